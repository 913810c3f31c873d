"""Evaluation: questions, span metrics, per-level/router scores and the HTML report."""
