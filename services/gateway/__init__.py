"""Gateway: indexes tweets and labels into Elasticsearch and serves them over HTTP."""
