"""Internal helpers. No stability promise: import from here only inside sealtrail."""
