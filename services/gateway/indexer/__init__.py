"""The indexer process: consumes tweets and labels, upserts them into Elasticsearch."""
