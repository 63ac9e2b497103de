"""Offline training commands: they fit the small artefacts the services load (and never fit)."""
