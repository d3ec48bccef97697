"""Verification (L2): checks only, no I/O. Bytes and parsed models in, results or errors out."""
