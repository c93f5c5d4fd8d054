"""What the public and the regulators receive: the announcement, regulator reports, and the deadline board."""
