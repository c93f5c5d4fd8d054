"""Notices: per-person rendering from lawyer-edited templates, lint, the review bundle, approval."""
