"""The reconciler: one pass per Animation, as gather, decide, apply."""
