"""Ingestor: replays tweet datasets (JSON, JSON Lines, Twitter API v1.1/v2, CSV) into ``tweets.raw``."""

import sys

# ijson's C backend (yajl2_c, 3.3 to 3.6 at least) crashes the process with a segmentation fault
# when Python refuses to turn a JSON integer into an ``int``: since 3.11 CPython refuses strings
# of more than 4,300 digits. One such number in a file would kill the run, so this package, the
# only one that parses files with ijson, lifts that limit for its process (and the reading
# child, which imports it). The number is then judged by the model like any other (an id has at
# most 19 digits; a count Elasticsearch cannot hold is dead-lettered by the gateway's indexer,
# elasticsearch_rejected); converting a million digits takes seconds.
sys.set_int_max_str_digits(0)
