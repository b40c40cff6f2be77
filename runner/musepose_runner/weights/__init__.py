"""The weights directory: its layout, lock, digest, and ``weights pull``."""
