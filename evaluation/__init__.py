"""Evaluation against hand-labelled gold sets, and the generated REPORT.md."""
