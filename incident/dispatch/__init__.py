"""Dispatch: approved notices through apprise, with retries, fallback, crash-safe resume and proof."""
