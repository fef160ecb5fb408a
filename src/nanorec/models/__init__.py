"""Model definitions; this package does no I/O."""
