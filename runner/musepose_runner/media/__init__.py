"""Media files: probing, decoding, encoding, background removal."""
