"""Gateway: indexes tweets and labels into Elasticsearch and serves them over HTTP.

Three processes, one package each: ``gateway.indexer``, ``gateway.api`` and ``gateway.dlq``
(each started as ``python -m gateway.<process>``). The modules at this level are the ones
more than one of them uses.
"""
