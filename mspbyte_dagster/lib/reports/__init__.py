"""What an MSP sends its customer (the tenant report: HTML, CSV, XLSX) and what it reads about its
whole fleet (fleet posture: Parquet, CSV): posture figures per pass, tables and pivots with pandas."""
