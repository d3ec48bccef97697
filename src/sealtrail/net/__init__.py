"""Network plumbing (L1, I/O): the one HTTP client stack every client of sealtrail shares."""
