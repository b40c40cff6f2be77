"""GPU slots and the waiting queue: who holds GPUs and who starts next."""
