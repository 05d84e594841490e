"""Training: dataset items and their cache, Lightning tasks, the metrics they validate with, and runs
that end in a checkpoint folder. :mod:`tuneseek.evaluate` builds on it, never the other way."""
