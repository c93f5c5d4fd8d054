"""The data inventory: people, the systems that hold their data, and which category each system held when.

models.py holds the tables and the named queries other domains call; rows.py reads CSV and JSON Lines files;
validation.py checks one row field by field; importer.py writes validated batches; flows.py holds the use cases.
"""
