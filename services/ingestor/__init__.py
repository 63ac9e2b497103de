"""Ingestor: replays tweet datasets (JSON, JSON Lines, Twitter API v1.1/v2, CSV) into ``tweets.raw``."""
