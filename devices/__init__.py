"""Device catalogue, topic scheme and payload decoding. Pure data and functions: no I/O."""
