"""Landmark segments on disk: both layouts answer lookups alike; merging keeps live postings."""

import numpy as np
import pytest

from tuneseek.fingerprint.hashes import HASH_SPACE
from tuneseek.store import landmarks
from tuneseek.store.landmarks import Segment, merge_segments, segment_size, write_segment


@pytest.fixture
def postings():
    rng = np.random.default_rng(3)
    hashes = rng.integers(0, HASH_SPACE, 50_000).astype(np.uint32)
    hashes[:500] = 12345  # a popular hash
    frames = rng.integers(0, 2**31, 50_000).astype(np.int64)
    return hashes, frames


@pytest.mark.parametrize("layout, in_memory_csr", [("csr", False), ("bucketed", False), ("bucketed", True)])
def test_lookup_returns_exactly_the_postings_of_each_hash(tmp_path, postings, layout, in_memory_csr, monkeypatch):
    if in_memory_csr:  # a large bucketed segment gets a CSR table in memory when opened
        monkeypatch.setattr(landmarks, "IN_MEMORY_CSR_POSTINGS", 1000)
    hashes, frames = postings
    seg = Segment(tmp_path / "landmarks" / write_segment(tmp_path, hashes, frames, layout=layout))
    assert (seg.offsets is not None) == (layout == "csr" or in_memory_csr)
    query = np.array([12345, hashes[700], HASH_SPACE - 1, 0], np.uint32)
    start, end = seg.ranges(query)
    qi, got = seg.gather(start, end - start)
    for i, h in enumerate(query):
        assert sorted(got[qi == i]) == sorted(frames[hashes == h])
    h, g = seg.postings_of_hashes(0, HASH_SPACE)
    assert np.array_equal(h, np.sort(hashes)) and len(g) == len(frames)


def test_bucketed_layout_takes_five_bytes_a_posting(tmp_path, postings):
    hashes, frames = postings
    name = write_segment(tmp_path, hashes, frames)
    assert (tmp_path / "landmarks" / name / "low.npy").exists()
    assert segment_size(tmp_path, name) < 5 * len(hashes) + 40_000


def test_size_of_a_segment_merged_away_by_another_process_is_zero_not_an_error(tmp_path, postings):
    name = write_segment(tmp_path, *postings)
    landmarks.remove_unlisted(tmp_path, keep=set())  # what a merging writer does once the list moved on
    assert segment_size(tmp_path, name) == 0


def test_the_same_postings_in_any_order_make_the_same_segment_bytes(tmp_path, postings):
    hashes, frames = postings
    shuffled = np.random.default_rng(8).permutation(len(hashes))
    a = write_segment(tmp_path, hashes, frames)
    b = write_segment(tmp_path, hashes[shuffled], frames[shuffled])
    for name in ("frames.npy", "buckets.npy", "low.npy"):
        assert (tmp_path / "landmarks" / a / name).read_bytes() == (tmp_path / "landmarks" / b / name).read_bytes()


@pytest.mark.parametrize("chunk", [1_000, 10**9])
def test_a_merge_in_bounded_chunks_writes_the_bytes_of_one_write_of_the_live_postings(
    tmp_path, postings, chunk, monkeypatch
):
    monkeypatch.setattr(landmarks, "MERGE_CHUNK_POSTINGS", chunk)  # 1 000: some 150 ranges of hashes
    hashes, frames = postings
    thirds = np.array_split(np.random.default_rng(5).permutation(len(hashes)), 3)
    parts = [Segment(tmp_path / "landmarks" / write_segment(tmp_path, hashes[i], frames[i])) for i in thirds]
    live = frames % 7 != 0  # postings of removed tracks are dropped
    merged, n = merge_segments(tmp_path, parts, lambda g: g % 7 != 0)
    whole = write_segment(tmp_path, hashes[live], frames[live])
    assert n == live.sum()
    for f in sorted((tmp_path / "landmarks" / whole).iterdir()):
        assert (tmp_path / "landmarks" / merged / f.name).read_bytes() == f.read_bytes(), f.name


def test_a_merge_that_keeps_nothing_writes_nothing(tmp_path, postings):
    seg = Segment(tmp_path / "landmarks" / write_segment(tmp_path, *postings))
    assert merge_segments(tmp_path, [seg], lambda g: np.zeros(len(g), bool)) == ("", 0)
    assert [d.name for d in (tmp_path / "landmarks").iterdir()] == [seg.name]  # nothing left aside either
