"""The local vector store behind similarity search: exact below a size, inverted lists above, same answers."""

import numpy as np
import pytest

pytest.importorskip("faiss")

from tuneseek.errors import UsageError  # noqa: E402
from tuneseek.store.vectors import FaissStore  # noqa: E402


def clustered(n, dim=200, clusters=50, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    return (centres[rng.integers(clusters, size=n)] + 0.5 * rng.standard_normal((n, dim))).astype(np.float32)


def test_exact_search_ranks_by_cosine_and_excludes_the_query_itself():
    vectors = clustered(500)
    index = FaissStore(200)
    index.upsert(np.arange(1000, 1500), vectors)
    scores, ids = index.search(vectors[7], k=5, exclude=[1007])
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    truth = np.argsort(-(unit @ unit[7]))[1:6] + 1000
    assert list(ids[0]) == list(truth) and 1007 not in ids[0]
    assert np.all(np.diff(scores[0]) <= 1e-6) and scores[0][0] <= 1.0 + 1e-6


def test_inverted_lists_keep_recall_at_10_above_095_against_exact():
    vectors = clustered(20_000, seed=1)
    queries = clustered(100, seed=2)
    exact, approx = FaissStore(200), FaissStore(200, exact_limit=1000)
    for index in (exact, approx):
        index.upsert(np.arange(len(vectors)), vectors)
    assert exact.exact and not approx.exact
    _, truth = exact.search(queries, k=10)
    _, found = approx.search(queries, k=10)
    recall = np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found)])
    assert recall >= 0.95


def test_upserting_and_deleting_keep_one_vector_per_id():
    store = FaissStore(4)
    store.upsert([1, 2, 3], np.eye(3, 4))
    assert store.search([0, 1, 0, 0], k=1)[1][0, 0] == 2
    store.upsert([2], [[0, 0, 0, 1]])
    store.delete([1])
    assert len(store) == 2
    assert store.search([0, 0, 0, 2], k=1)[1][0, 0] == 2
    ids = store.search([1, 0, 0, 0], k=3)[1][0]
    assert sorted(ids[ids >= 0]) == [2, 3] and ids[-1] == -1
    with pytest.raises(UsageError, match="dimensions"):
        store.search(np.ones(5), k=1)
