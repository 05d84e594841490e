"""Stores under a library directory: the SQLite catalogue, the landmark index, the manifest, the writer lock."""
