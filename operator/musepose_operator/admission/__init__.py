"""Checks an Animation must pass before it runs, and the original payload."""
