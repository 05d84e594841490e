"""Evaluation: identification on a query set, and trained runs (taggers, classifiers, embeddings, the
text–audio space) on held-out data, with the metrics of :mod:`tuneseek.train.metrics`."""
