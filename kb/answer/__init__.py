"""Answering: the chain, its refusal policy, evidence selection, prompts and answer types."""
