"""Answers: generators (extractive, OpenAI-compatible, llama.cpp), prompt fitting, citations,
answer scores."""
