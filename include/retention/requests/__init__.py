"""Termination and deletion requests: validate, take in, plan steps, carry them out, verify."""
