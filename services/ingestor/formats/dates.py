"""Timestamps as the sources spell them: the parser is part of the shared contract
(``common.records``, where the accepted spellings are listed), so the gateway's ``POST /ingest``
judges dates exactly like the replay."""

from common.records import ZONE_ABBREVIATIONS, parse_datetime

__all__ = ["ZONE_ABBREVIATIONS", "parse_datetime"]
