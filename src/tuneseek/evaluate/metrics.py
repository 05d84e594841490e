"""The field's metrics for taggers and classifiers, computed with scikit-learn.

Shared by training (validation metrics each epoch) and ``tuneseek evaluate``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def tagging(y_true: np.ndarray, y_score: np.ndarray, labels: Sequence[str]) -> dict:
    """Macro ROC-AUC and PR-AUC (average precision) over the tags, and each tag's own.

    Tags with no positive (or no negative) example in ``y_true`` have no defined AUC: they are
    left out of the macro averages and listed under ``"tags_without_both_classes"``.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    y_true = np.asarray(y_true) > 0.5
    per_tag, skipped = {}, []
    for j, label in enumerate(labels):
        positives = int(y_true[:, j].sum())
        if positives in (0, len(y_true)):
            skipped.append(label)
            continue
        per_tag[label] = {
            "roc_auc": float(roc_auc_score(y_true[:, j], y_score[:, j])),
            "pr_auc": float(average_precision_score(y_true[:, j], y_score[:, j])),
            "positives": positives,
        }
    return {
        "roc_auc": float(np.mean([m["roc_auc"] for m in per_tag.values()])) if per_tag else float("nan"),
        "pr_auc": float(np.mean([m["pr_auc"] for m in per_tag.values()])) if per_tag else float("nan"),
        "items": int(len(y_true)),
        "per_tag": per_tag,
        "tags_without_both_classes": skipped,
    }


def classification(y_true: np.ndarray, y_score: np.ndarray, labels: Sequence[str]) -> dict:
    """Accuracy, balanced accuracy, each class's recall and the confusion matrix (rows: truth)."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, recall_score

    y_true = np.asarray(y_true, np.int64)
    y_pred = np.asarray(y_score).argmax(axis=1)
    classes = np.arange(len(labels))
    recall = recall_score(y_true, y_pred, labels=classes, average=None, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "items": int(len(y_true)),
        "per_class_recall": {label: float(r) for label, r in zip(labels, recall)},
        "confusion": confusion_matrix(y_true, y_pred, labels=classes).tolist(),
    }
