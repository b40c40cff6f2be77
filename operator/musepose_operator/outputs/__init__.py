"""An Animation's video after its run: links, the object store, reclaim."""
