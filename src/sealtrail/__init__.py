"""sealtrail: sign releases, prove how they were built, and verify both."""

__version__ = "0.1.0"
