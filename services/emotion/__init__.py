"""Emotion service: labels every tweet with one of seven emotions and a valence score."""
