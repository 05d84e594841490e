"""The field's metrics: taggers and classifiers, embeddings, fingerprints and text-to-music retrieval.

Training validates with them every epoch (:mod:`tuneseek.train.tasks`,
:mod:`tuneseek.train.text_audio`) and ``tuneseek evaluate`` reports them on held-out data
(:mod:`tuneseek.evaluate`, which imports training, never the other way). The classification and
embedding metrics are computed with scikit-learn (imported when first used).

Retrieval (:func:`queries`, :func:`retrieval`, :func:`chance`): each distinct sentence is one
query; its matches are the items that carry exactly that sentence. R@k is the share of queries
with a match among the first k; mAP@10 the mean over queries of the average precision of the
first 10 (divided by ``min(matches, 10)``); then the median rank of the first match and the mean
reciprocal rank. Ties count against the query: a match is ranked after every non-match of the
same score, so a model that scores everything alike scores at chance, not better.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Retrieval: R@k at these k, and mAP at this depth.
KS = (1, 5, 10)
MAP_AT = 10
#: Random rankings averaged for the chance level.
CHANCE_REPEATS = 20
_QUERY_CHUNK = 512  # queries ranked at a time: bounds memory on large test splits


def tagging(y_true: np.ndarray, y_score: np.ndarray, *, labels: Sequence[str]) -> dict:
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


def classification(y_true: np.ndarray, y_score: np.ndarray, *, labels: Sequence[str]) -> dict:
    """Accuracy, balanced accuracy, each class's recall and the confusion matrix (rows: truth).

    A class with no example in ``y_true`` has no recall (``None``, and it is listed in
    ``classes_without_examples``); balanced accuracy is the mean recall of the classes present,
    as scikit-learn defines it.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, recall_score

    y_true = np.asarray(y_true, np.int64)
    y_pred = np.asarray(y_score).argmax(axis=1)
    classes = np.arange(len(labels))
    recall = recall_score(y_true, y_pred, labels=classes, average=None, zero_division=0)
    present = np.isin(classes, y_true)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(recall[present].mean()) if present.any() else None,
        "items": int(len(y_true)),
        "per_class_recall": {label: float(r) if p else None for label, r, p in zip(labels, recall, present)},
        "classes_without_examples": [label for label, p in zip(labels, present) if not p],
        "confusion": confusion_matrix(y_true, y_pred, labels=classes).tolist(),
    }


def embedding(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    *,
    labels: Sequence[str],
    k: int = 5,
) -> dict:
    """How well vectors that were learnt without labels separate the classes of a labelled set.

    Three views, the usual ones for self-supervised embeddings:

    - a linear probe: logistic regression on standardised vectors, fitted on ``train_*`` and
      scored on ``test_*`` (accuracy, macro F1 over the classes present in ``test_y``, each
      class's F1; with the majority class's share of the test set as the chance level);
    - k-means on the test vectors with k = the number of classes in ``test_y``: purity (the
      share of vectors whose cluster's most common class is theirs), NMI and ARI against the
      classes;
    - kNN retrieval among the test vectors: precision@k by cosine similarity, leaving the
      query out, with the chance level (the expected precision of random neighbours). An item
      that is the only one of its class in the test set has no right answer and is not a query
      (``queries`` counts those that are; with none, precision and chance are ``None``). ``k``
      is clipped to one less than the smallest class among the queries, so that a perfect
      embedding scores 1.0; the ``k`` used is reported.

    ``*_y`` are class indices into ``labels``. The probe needs two classes in ``train_y``, the
    rest two classes in ``test_y`` (else ``ValueError``). Seeded: the same input gives the same
    numbers.
    """
    from sklearn.cluster import KMeans
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, adjusted_rand_score, f1_score, normalized_mutual_info_score
    from sklearn.metrics.cluster import contingency_matrix
    from sklearn.neighbors import NearestNeighbors
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train_x, test_x = np.asarray(train_x, np.float64), np.asarray(test_x, np.float64)
    train_y, test_y = np.asarray(train_y, np.int64), np.asarray(test_y, np.int64)
    train_classes, counts = np.unique(train_y), np.bincount(test_y, minlength=len(labels))
    present = np.flatnonzero(counts)
    if len(train_classes) < 2 or len(present) < 2:
        raise ValueError(f"need two classes at least in each set; train has {len(train_classes)}, test {len(present)}")
    n = len(test_y)

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    predicted = probe.fit(train_x, train_y).predict(test_x)
    f1 = f1_score(test_y, predicted, labels=present, average=None, zero_division=0)

    clusters = KMeans(n_clusters=len(present), n_init=10, random_state=0).fit_predict(test_x)
    purity = contingency_matrix(test_y, clusters).max(axis=0).sum() / n

    same_class = counts[test_y] - 1  # items of the query's class besides itself
    queries = np.flatnonzero(same_class > 0)
    k_used = precision = chance = None
    if len(queries):
        k_used = int(min(k, same_class[queries].min()))
        found = (
            NearestNeighbors(n_neighbors=k_used + 1, metric="cosine")
            .fit(test_x)
            .kneighbors(test_x[queries], return_distance=False)
        )
        others = found != queries[:, None]
        others[others.all(axis=1), -1] = False  # the query itself tied out of its k+1: drop the farthest instead
        neighbours = found[others].reshape(len(queries), k_used)
        precision = float((test_y[neighbours] == test_y[queries, None]).mean())
        chance = float((same_class[queries] / (n - 1)).mean())
    return {
        "linear_probe": {
            "accuracy": float(accuracy_score(test_y, predicted)),
            "macro_f1": float(f1.mean()),
            "majority_class_accuracy": float(counts.max() / n),
            "per_class_f1": {labels[c]: float(v) for c, v in zip(present, f1)},
            "train_items": int(len(train_y)),
            "test_items": n,
        },
        "kmeans": {
            "k": int(len(present)),
            "purity": float(purity),
            "nmi": float(normalized_mutual_info_score(test_y, clusters)),
            "ari": float(adjusted_rand_score(test_y, clusters)),
            "items": n,
        },
        "knn": {
            "k": k_used,
            "k_asked": int(k),
            "metric": "cosine",
            "precision_at_k": precision,
            "chance": chance,
            "items": n,
            "queries": int(len(queries)),
        },
        "test_items_per_class": {labels[c]: int(counts[c]) for c in present},
    }


def queries(sentences: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(first, relevant)`` for items with these sentences: one query per distinct sentence, in order of
    first appearance; ``first`` ``(q,)`` the index of its first item, ``relevant`` ``(q, n)`` its matches."""
    index: dict[str, int] = {}
    for i, s in enumerate(sentences):
        index.setdefault(s, i)
    first = np.array(list(index.values()), np.int64)
    labels = np.array([index[s] for s in sentences], np.int64)
    return first, labels[None, :] == first[:, None]


def retrieval(scores: np.ndarray, relevant: np.ndarray) -> dict[str, float]:
    """R@1, R@5, R@10, mAP@10, median rank (of the first match) and MRR of ``(queries, items)`` scores.

    ``relevant`` ``(queries, items)`` says which items match each query; every query needs one.
    Ties are broken against the query (see the module docstring).
    """
    scores, relevant = np.asarray(scores, np.float64), np.asarray(relevant, bool)
    if scores.shape != relevant.shape or not relevant.any(axis=1).all():
        raise ValueError("every query needs scores for every item and one match at least")
    firsts, aps = [], []
    for at in range(0, len(scores), _QUERY_CHUNK):
        s, r = scores[at : at + _QUERY_CHUNK], relevant[at : at + _QUERY_CHUNK]
        order = np.lexsort((r, -s), axis=1)  # best first; among equal scores, non-matches first
        hits = np.take_along_axis(r, order, axis=1)
        firsts.append(hits.argmax(axis=1) + 1)
        top = hits[:, :MAP_AT]
        precision = np.cumsum(top, axis=1) / np.arange(1, top.shape[1] + 1)
        aps.append((precision * top).sum(axis=1) / np.minimum(r.sum(axis=1), MAP_AT))
    first, ap = np.concatenate(firsts), np.concatenate(aps)
    out = {f"R@{k}": float((first <= k).mean()) for k in KS}
    out.update(
        {f"mAP@{MAP_AT}": float(ap.mean()), "median_rank": float(np.median(first)), "MRR": float((1.0 / first).mean())}
    )
    return out


def chance(relevant: np.ndarray, *, repeats: int = CHANCE_REPEATS, seed: int = 0) -> dict[str, float]:
    """The :func:`retrieval` metrics of random rankings, averaged over ``repeats`` (seeded: the same every time)."""
    rng = np.random.default_rng(seed)
    runs = [retrieval(rng.random(relevant.shape), relevant) for _ in range(repeats)]
    return {key: float(np.mean([r[key] for r in runs])) for key in runs[0]}


def segment_top1(queries: np.ndarray, anchors: np.ndarray) -> float:
    """The segment-level top-1 hit rate of a fingerprint: the share of ``queries`` (row ``i`` a degraded copy
    of ``anchors[i]``; unit vectors) whose nearest anchor by inner product is their own. A tie counts against
    the query, so a model that maps everything alike scores 0, not chance."""
    queries, anchors = np.asarray(queries, np.float32), np.asarray(anchors, np.float32)
    if len(queries) == 0:
        return 0.0
    hits = 0
    for lo in range(0, len(queries), _QUERY_CHUNK):
        scores = queries[lo : lo + _QUERY_CHUNK] @ anchors.T
        rows = np.arange(len(scores))
        own = scores[rows, lo + rows].copy()
        scores[rows, lo + rows] = -np.inf
        hits += int(np.sum(own > scores.max(axis=1)))
    return hits / len(queries)
