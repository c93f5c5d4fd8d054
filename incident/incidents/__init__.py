"""Incidents: opened from a playbook, a timeline of what responders did, and one status machine."""
