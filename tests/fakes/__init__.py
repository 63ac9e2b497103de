"""Local stand-ins for third-party services that tests may not call for real."""
