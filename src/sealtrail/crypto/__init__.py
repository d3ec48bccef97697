"""Cryptographic primitives (L1): public keys, signature checks, hashing. No I/O."""
