"""Data at rest: legal holds and the purge of a closed incident's personal data (use cases composing domains)."""
