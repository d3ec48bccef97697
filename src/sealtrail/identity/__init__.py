"""Identity tokens for keyless signing (L2): where a signer finds one, and the browser login."""
