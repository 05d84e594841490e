"""The local vector store behind similarity search: exact below a size, inverted lists above, same answers."""

import numpy as np
import pytest

pytest.importorskip("faiss")

from tuneseek.errors import UsageError  # noqa: E402
from tuneseek.store.vectors import CompressedFaissStore, FaissStore  # noqa: E402


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


def unit(vectors):
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_the_compressed_store_finds_the_exact_nearest_neighbour_of_near_duplicates():
    vectors = unit(clustered(10_000, dim=64, clusters=100, seed=3))
    rng = np.random.default_rng(4)
    picked = rng.choice(len(vectors), 200, replace=False)
    queries = unit(vectors[picked] + 0.02 * rng.standard_normal((200, 64)).astype(np.float32))
    exact, compressed = FaissStore(64), CompressedFaissStore(64)
    for store in (exact, compressed):
        store.upsert(np.arange(len(vectors)) + 7, vectors)
    nearest = exact.search(queries, k=1)[1][:, 0]
    found = compressed.search(queries, k=10)[1]
    assert np.mean(nearest == picked + 7) > 0.95  # the duplicates are the nearest ...
    assert np.mean(found[:, 0] == nearest) >= 0.95  # ... and the compressed store's first
    assert np.mean([n in f for n, f in zip(nearest, found)]) >= 0.99  # ... or among its 10


def test_the_compressed_store_keeps_codes_not_vectors_and_upserts_without_retraining():
    import tracemalloc

    vectors = unit(clustered(5_000, dim=64, clusters=100, seed=5))
    store = CompressedFaissStore(64)
    tracemalloc.start()
    store.upsert(np.arange(5_000), vectors)
    probe = store.search(vectors[:50], k=5)  # trained and filled here
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert held < 0.1 * vectors.nbytes  # numpy holds no copy of the vectors (the codes live in FAISS)
    moved = unit(clustered(1, dim=64, clusters=1, seed=6))
    store.upsert([3], moved)  # replaces id 3
    store.upsert([20_000], vectors[4:5])  # a new id
    store.delete([5, 99_999])
    assert len(store) == 5_000
    assert store.search(moved, k=1)[1][0, 0] == 3
    assert 3 not in store.search(vectors[3], k=5)[1][0] and 5 not in store.search(vectors[5], k=5)[1][0]
    assert set(store.search(vectors[4], k=2)[1][0]) == {4, 20_000}
    # the vectors nowhere near those ids: the same codes under the same training, the same answers
    untouched = [q for q in range(50) if not np.isin(probe[1][q], [3, 4, 5]).any()]
    again = store.search(vectors[untouched], k=5)
    assert len(untouched) > 40 and np.array_equal(again[1], probe[1][untouched])
    assert np.allclose(again[0], probe[0][untouched], rtol=0, atol=1e-6)


def test_a_compressed_store_trained_on_its_sample_then_filled_in_chunks_answers_as_one_trained_lazily():
    """train() on the sample() rows, then upserts a chunk at a time (no float32 copy of them all collected):
    the same training, the same codes, the same answers as a store trained on its first search."""
    vectors = clustered(12_000, dim=64, clusters=100, seed=8)
    ids = np.arange(len(vectors)) * 3 + 1
    rng = np.random.default_rng(9)
    picked = rng.choice(len(vectors), 200, replace=False)
    queries = vectors[picked] + 0.02 * rng.standard_normal((200, 64)).astype(np.float32)
    centre = vectors.mean(axis=0)
    lazy, chunked = CompressedFaissStore(64, centre=centre), CompressedFaissStore(64, centre=centre)
    lazy.upsert(ids, vectors)
    sample = CompressedFaissStore.sample(len(vectors))
    assert len(sample) == len(vectors) and np.array_equal(sample, np.arange(len(vectors)))  # all, when this few
    assert len(CompressedFaissStore.sample(2_000_000)) == 64 * 1414  # 64 a list, about √n lists
    chunked.train(vectors[sample], size=len(vectors))
    assert chunked.trained_size == len(vectors) and len(chunked) == 0
    for at in range(0, len(vectors), 5_000):
        chunked.upsert(ids[at : at + 5_000], vectors[at : at + 5_000])
    found, expected = chunked.search(queries, k=10), lazy.search(queries, k=10)
    assert lazy.trained_size == chunked.trained_size and len(chunked) == len(lazy)
    assert np.array_equal(found[1], expected[1]) and np.allclose(found[0], expected[0], rtol=0, atol=1e-6)
    assert np.mean(found[1][:, 0] == ids[picked]) > 0.95  # near-duplicates find their vectors
    with pytest.raises(UsageError, match="already trained"):
        chunked.train(vectors[sample])


def test_a_compressed_store_trained_explicitly_encodes_what_it_had_collected():
    vectors = unit(clustered(3_000, dim=32, clusters=20, seed=10))
    store = CompressedFaissStore(32)
    store.upsert(np.arange(1_000), vectors[:1_000])
    store.train(vectors[CompressedFaissStore.sample(3_000)], size=3_000)
    store.upsert(np.arange(1_000, 3_000), vectors[1_000:])
    assert len(store) == 3_000 and store.trained_size == 3_000
    assert store.search(vectors[[5, 2_500]], k=1)[1][:, 0].tolist() == [5, 2_500]
    with pytest.raises(UsageError, match="32 dimensions"):
        CompressedFaissStore(32).train(vectors[:, :16])


def test_a_copy_of_the_compressed_store_changes_apart_from_it():
    vectors = unit(clustered(2_000, dim=32, clusters=20, seed=7))
    store = CompressedFaissStore(32)
    store.upsert(np.arange(2_000), vectors)
    store.search(vectors[:1], k=1)
    other = store.copy()
    other.delete([0])
    other.upsert([5_000], vectors[:1])
    assert store.search(vectors[:1], k=1)[1][0, 0] == 0 and other.search(vectors[:1], k=1)[1][0, 0] == 5_000
    assert len(store) == len(other) == 2_000
    with pytest.raises(UsageError, match="sub-quantisers"):
        CompressedFaissStore(20)
