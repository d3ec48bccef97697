"""Wire types (L1): bundles, trust roots, checkpoints, log entries, timestamps.

Models parse untrusted bytes strictly and check their own invariants; they do no I/O.
"""
