"""The end-to-end demo: a synthetic platform and the whole story from inventory to regulator reports."""
