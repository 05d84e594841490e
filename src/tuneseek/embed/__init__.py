"""Pretrained models turned into tags and vectors: musicnn weights (read from the original
TensorFlow checkpoints, converted and cached), the tagger and the multi-scale embedder.

Importing this package is cheap: torch is only imported by the modules that run a network.
"""
