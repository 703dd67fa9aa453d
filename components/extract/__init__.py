"""extract: read the published labeled projects from the warehouse into a parquet dataset."""
