"""Stance service: labels each tweet SUPPORT / OPPOSE / NEUTRAL (llama-cpp or an OpenAI-compatible API)."""
