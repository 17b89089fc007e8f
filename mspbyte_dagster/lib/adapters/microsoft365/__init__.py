"""Microsoft 365 adapter: customer tenants read from Microsoft Graph into snapshots (docs/snapshot-format.md).

`auth` gets client-credentials tokens per customer tenant, `client` talks to
Graph (retries, throttling, paging, `$batch`, bounded concurrency), `reader`
turns the endpoints into snapshot files. The local Graph of development and
tests is `mspbyte_dev.fake_graph`, outside the production package.
"""
