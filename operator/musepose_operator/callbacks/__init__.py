"""Callbacks: the original worker's three (start, uploaded, failed) and RunPod's webhook."""
