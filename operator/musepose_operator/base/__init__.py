"""Small pure things every layer shares: names, timestamps, seals, types."""
