"""The tamper-evident audit trail beside every domain: typed events in one hash chain per incident."""
