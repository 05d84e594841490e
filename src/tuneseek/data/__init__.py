"""Dataset readers and writers."""
