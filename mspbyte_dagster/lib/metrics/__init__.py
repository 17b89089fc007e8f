"""Prometheus metrics of the pipeline: the collector that reads them from the app database at each
scrape (`collector`), the exporter's HTTP endpoint (`server`), and the Pushgateway push (`push`)."""
