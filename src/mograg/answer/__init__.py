"""Answers: generators, prompt fitting and citations over retrieved sources."""
