"""The spec's nested shape (a JSON array, or JSON Lines with ``--format jsonl``)::

    {"id": 1, "user": {"username": "...", "handle": "@...", "verified": false},
     "meta": {"created_at": "2025-02-19", "hashtags": ["#Tag"]},
     "payload": {"tweet": {"content": "..."}},
     "metrics": {"retweets": 4066, "likes": 9543}}

The mapping lives in ``common.records``: the gateway's ``POST /ingest`` takes the same layout.
"""

from common.records import map_nested

__all__ = ["map_nested"]
