"""The reconciler: watches feed passes; a pass gathers, decides, applies."""
