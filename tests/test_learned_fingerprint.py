"""The learned fingerprint's search side: segment vectors stored in the catalogue, clips voted into aligned
sequences, "no match", and its fusion with the landmarks.

An untrained network stands in for a trained one: it maps the same audio to the same vectors (and a
quieter copy to the same ones: its input is level-free), so clips cut on the query grid are found
exactly, while unrelated music, which it maps to vectors near every other, must still give no match.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch

from tuneseek.errors import AudioError
from tuneseek.fingerprint import learned
from tuneseek.fingerprint.fusion import Corroboration, FusedIdentifier, fuse
from tuneseek.fingerprint.learned import (
    DEFAULT_CALIBRATION,
    HOP_SECONDS,
    Calibration,
    LearnedIndex,
    View,
    calibrate,
    search,
    segment_vectors,
    simulate_null,
    track_vectors,
)
from tuneseek.identifier import Candidate
from tuneseek.models.fingerprint_net import FingerprintNet
from tuneseek.store.catalog import Catalog
from tuneseek.store.vectors import CompressedFaissStore, FaissStore
from tuneseek.synth import synth_track

SR = 8000
SEEDS = (11, 12, 13, 14)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def net() -> FingerprintNet:
    torch.manual_seed(0)
    return FingerprintNet(dim=32, width=4, hidden=16).eval()


@pytest.fixture(scope="module")
def songs() -> dict[int, np.ndarray]:
    return {seed: synth_track(seed, duration=20.0, sr=SR).astype(np.float32) for seed in SEEDS}


@pytest.fixture(scope="module")
def vectors(net, songs) -> dict[int, np.ndarray]:
    return {seed: track_vectors(net, audio) for seed, audio in songs.items()}


def _insert(catalog: Catalog, seed: int) -> int:
    facts = dict(
        path=f"/music/{seed}.flac", content_hash=f"{seed:032x}", size=1, mtime_ns=1, duration=20.0,
        sample_rate=SR, channels=1, title=None, artist=None,
    )  # fmt: skip
    return catalog.insert_track(facts)


@pytest.fixture
def library(tmp_path, net, vectors):
    """A catalogue holding the four songs' vectors, its learned index, and ``{seed: track id}``."""
    catalog = Catalog(tmp_path, create=True)
    index = LearnedIndex(catalog, net, name="fingerprint:test", version="v1", phases=4)  # a query step of 1/8 s
    with catalog.transaction():
        ids = {seed: _insert(catalog, seed) for seed in SEEDS}
        index.add([(ids[seed], vectors[seed]) for seed in SEEDS])
    yield catalog, index, ids
    catalog.close()


def _clip(audio: np.ndarray, start: float, seconds: float = 8.0) -> np.ndarray:
    return audio[int(round(start * SR)) : int(round((start + seconds) * SR))]


@pytest.mark.parametrize("start", [3.0, 6.5, 3.25, 4.125])
def test_a_clip_is_found_with_its_track_and_offset(library, songs, start):
    _, index, ids = library
    found = index.candidates(_clip(songs[12], start), k=3)
    assert found and found[0].track_id == ids[12]
    best = found[0]
    assert best.offset == pytest.approx(start, abs=1e-6)
    assert best.confidence > 0.9 and best.speed == best.tempo == 1.0
    assert 0 <= best.clip_start < 0.5 and 7.5 < best.clip_end <= 8.0 and best.coverage > 0.9
    assert best.score >= 12  # aligned segments that match, one per 0.5 s
    assert best.track_start == pytest.approx(start + best.clip_start, abs=1e-6)


def test_a_quieter_copy_and_a_clip_before_the_track_start_are_found(library, songs):
    _, index, ids = library
    quiet = index.candidates(0.2 * _clip(songs[13], 9.5))
    assert quiet[0].track_id == ids[13] and quiet[0].offset == pytest.approx(9.5)
    lead_in = np.concatenate([np.zeros(2 * SR, np.float32), _clip(songs[14], 0.0, 6.0)])
    found = index.candidates(lead_in)
    assert found[0].track_id == ids[14] and found[0].offset == pytest.approx(-2.0)
    assert found[0].clip_start == pytest.approx(2.0)


def test_music_not_indexed_gives_no_match(library):
    _, index, _ = library
    for seed in (77, 999):
        assert index.candidates(synth_track(seed, duration=10.0, sr=SR).astype(np.float32)) == []


def test_a_silent_clip_is_refused_in_one_line(library):
    _, index, _ = library
    with pytest.raises(AudioError, match="nothing audible") as e:
        index.candidates(np.zeros(5 * SR, np.float32), name="quiet.wav")
    assert "quiet.wav" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(AudioError, match="too short"):
        index.candidates(np.ones(SR // 2, np.float32), name="short.wav")


def test_remove_forgets_a_track(library, songs):
    catalog, index, ids = library
    clip = _clip(songs[12], 3.0)
    assert index.candidates(clip)[0].track_id == ids[12]
    with catalog.transaction():
        catalog.delete_track(ids[12])
        index.remove([ids[12]])
    assert ids[12] not in [c.track_id for c in index.candidates(clip)]
    assert next(catalog.fingerprint_vectors(index.name, index.version, track_id=ids[12]), None) is None
    assert catalog.fingerprint_size(index.name)[0] == len(SEEDS) - 1


def test_a_library_above_the_compression_limit_still_finds_clips_and_no_match(library, songs, monkeypatch):
    """With the limit at 0 every view's segments are held compressed (coarse codes, this few of them; trained
    on their sample, then filled a small chunk at a time), and the exact re-ranking of the store's shortlist
    still finds the clips at their offsets."""
    monkeypatch.setattr(learned, "COMPRESSED_ABOVE", 0)
    monkeypatch.setattr(learned, "FILL_CHUNK", 16)
    _, index, ids = library
    view = index.view()
    audible = int(np.any(view.rows != 0, axis=1).sum())
    assert isinstance(view.store, CompressedFaissStore) and view.store.trained_size == len(view.store) == audible
    assert audible > 4 * learned.FILL_CHUNK
    for seed, start in ((12, 3.25), (13, 9.5), (14, 0.0)):
        found = index.candidates(_clip(songs[seed], start), k=3)
        assert found[0].track_id == ids[seed] and found[0].offset == pytest.approx(start)
        assert found[0].confidence > 0.9
    assert index.candidates(synth_track(77, duration=10.0, sr=SR).astype(np.float32)) == []


def test_a_compressed_store_is_carried_to_the_next_view_with_tracks_added_and_removed(
    library, net, songs, vectors, monkeypatch
):
    monkeypatch.setattr(learned, "COMPRESSED_ABOVE", 0)
    monkeypatch.setattr(learned, "FILL_CHUNK", 16)  # the new track's segments upserted in chunks too
    catalog, index, ids = library
    before = index.view().store
    song = synth_track(15, duration=20.0, sr=SR).astype(np.float32)
    with catalog.transaction():
        catalog.delete_track(ids[12])
        index.remove([ids[12]])
        new = _insert(catalog, 15)
        index.add([(new, track_vectors(net, song))])
    after = index.view().store
    assert after is not before and after.trained_size == before.trained_size  # copied, not trained again
    audible = {seed: int(np.any(v != 0, axis=1).sum()) for seed, v in vectors.items()}
    assert len(after) == len(before) - audible[12] + int(np.any(track_vectors(net, song) != 0, axis=1).sum())
    assert ids[12] not in [c.track_id for c in index.candidates(_clip(songs[12], 3.0))]
    assert index.candidates(_clip(song, 4.0))[0].track_id == new
    assert index.candidates(_clip(songs[11], 2.5))[0].track_id == ids[11]
    assert len(before) == sum(audible.values())  # the old view's store is left as it was


def test_vectors_survive_reopening_the_catalogue(library, net, songs, vectors):
    catalog, index, ids = library
    root = catalog.root
    catalog.close()
    reopened = Catalog(root, create=False)
    stored = dict(reopened.fingerprint_vectors("fingerprint:test", "v1"))
    assert set(stored) == set(ids.values())
    np.testing.assert_array_equal(stored[ids[13]], vectors[13])
    again = LearnedIndex(reopened, net, name="fingerprint:test", version="v1")
    assert again.candidates(_clip(songs[13], 2.0))[0].track_id == ids[13]
    assert reopened.extractors(ids[13])[ids[13]]["fingerprint:test"] == "v1"
    # another version's vectors are never compared with this one's queries
    assert LearnedIndex(reopened, net, name="fingerprint:test", version="v2").candidates(_clip(songs[13], 2.0)) == []
    reopened.close()


def test_an_older_catalogue_gains_the_table(tmp_path):
    catalog = Catalog(tmp_path, create=True)
    catalog.db.execute("DROP TABLE fingerprint_vectors")
    catalog.close()
    reopened = Catalog(tmp_path, create=False)
    assert reopened.fingerprint_size("fingerprint:any") == (0, 0)
    reopened.close()


def test_the_index_follows_the_catalogue_generation(library, net, songs, vectors):
    catalog, index, ids = library
    clip = _clip(songs[11], 1.0)
    assert index.candidates(clip)[0].track_id == ids[11]
    other = LearnedIndex(catalog, net, name="fingerprint:test", version="v1")  # another reader, built now
    other.view()
    with catalog.transaction():  # a writer re-indexes the track under a new id
        catalog.delete_track(ids[11])
        index.remove([ids[11]])
        new = _insert(catalog, 11)
        index.add([(new, vectors[11])])
    assert other.candidates(clip)[0].track_id == new


def test_streamed_long_tracks_take_bounded_memory():
    """An hour of audio in chunks never held whole: memory stays within a few batches, vectors equal."""

    class Probe(torch.nn.Module):
        embedding_dim = 8
        most = 0

        def embed(self, x: torch.Tensor) -> torch.Tensor:
            Probe.most = max(Probe.most, len(x))
            return torch.nn.functional.normalize(x[:, ::1000], dim=1)

    rng = np.random.default_rng(0)
    chunk = 3001  # seconds' fractions that never line up with the hop
    seconds = 1800

    def chunks():
        for _ in range(seconds * SR // chunk):
            yield rng.standard_normal(chunk).astype(np.float32) * 0.1

    tracemalloc.start()
    got = track_vectors(Probe(), chunks(), batch=64)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert Probe.most == 64
    assert len(got) == (seconds * SR // chunk * chunk - SR) // (SR // 2) + 1 and got.dtype == np.float16
    assert peak < 16e6  # the audio alone would be 57.6 MB
    rng = np.random.default_rng(0)
    whole = np.concatenate(list(chunks()))
    np.testing.assert_array_equal(track_vectors(Probe(), whole, batch=1000), got)


def test_inaudible_segments_are_zero_vectors(net, songs):
    audio = np.concatenate([songs[11][: 3 * SR], np.zeros(3 * SR, np.float32), songs[11][: 3 * SR]])
    v = segment_vectors(net, audio)
    assert len(v) == (len(audio) - SR) // (SR // 2) + 1
    silent = ~np.any(v != 0, axis=1)
    starts = np.arange(len(v)) * HOP_SECONDS
    np.testing.assert_array_equal(silent, (starts >= 3.0) & (starts + 1.0 <= 6.0))
    np.testing.assert_allclose(np.linalg.norm(v[~silent], axis=1), 1.0, atol=1e-5)


def test_the_shipped_threshold_holds_on_a_fresh_null_and_calibrate_fits_labels():
    scores, n = simulate_null(hours=0.5, clips=40, seed=7)
    assert len(scores) == 40
    assert (DEFAULT_CALIBRATION.confidence(scores, n) < 0.5).all()
    rng = np.random.default_rng(1)
    true = rng.normal(8.0, 2.0, 200)
    fitted = calibrate(np.concatenate([scores, true]), np.concatenate([n, np.full(200, 18)]),
                       np.concatenate([np.zeros(len(scores)), np.ones(200)]))  # fmt: skip
    assert scores.mean() < fitted.threshold(18) < true.mean()
    wrong = (fitted.confidence(scores, n) >= 0.5).sum() + (fitted.confidence(true, 18) < 0.5).sum()
    assert wrong < 0.05 * (len(scores) + len(true))
    assert Calibration(**fitted.to_dict()) == fitted
    with pytest.raises(Exception, match="both true and false"):
        calibrate(true, np.full(200, 18), np.ones(200))


# -- fusion ------------------------------------------------------------------------------
class Stub:
    """An identifier with fixed answers, counting its calls; ``lined``: the landmarks it holds lined up per
    ``(track, offset)``, ``(here, elsewhere)`` (a placement within the window of an offset gets its counts)."""

    def __init__(self, name: str, answers: list[Candidate] | Exception, lined: dict | None = None):
        self.name, self.version, self.sample_rate = name, "1", SR
        self.answers, self.calls, self.added, self.removed = answers, 0, [], []
        self.lined, self.lined_calls = lined or {}, 0

    def add(self, tracks):
        self.added.extend(tracks)

    def remove(self, track_ids):
        self.removed.extend(track_ids)

    def candidates(self, clip, k=5, *, name="<samples>", floor=0.5):
        self.calls += 1
        if isinstance(self.answers, Exception):
            raise self.answers
        return [c for c in self.answers if c.confidence >= floor][:k]

    def lined_up(self, clip, placements, window, *, name="<samples>"):
        self.lined_calls += 1
        return [
            next((n for (t, o), n in self.lined.items() if t == track and abs(o - offset) <= window), (0, 0))
            for track, offset in placements
        ]


def _candidate(track_id: int, offset: float, confidence: float, speed: float = 1.0) -> Candidate:
    return Candidate(track_id, offset, 0.0, 8.0, 10, confidence, speed, 1.0, 1.0)


def test_fusion_takes_the_landmark_alignment_and_combines_confidences(library, songs):
    _, learned, ids = library
    landmarks = Stub("landmarks", [_candidate(ids[12], 3.012, 0.8, speed=1.02), _candidate(999, 1.0, 0.6)])
    fused = FusedIdentifier(landmarks, learned)
    found = fused.candidates(_clip(songs[12], 3.0), k=3)
    assert [c.track_id for c in found] == [ids[12], 999]
    best = found[0]
    assert best.offset == 3.012 and best.speed == 1.02  # the landmarks' alignment, not the learned 3.0
    p_learned = learned.candidates(_clip(songs[12], 3.0))[0].confidence
    assert best.confidence == pytest.approx(1 - 0.2 * (1 - p_learned))
    assert found[1].confidence == 0.6


def test_fusion_skips_the_learned_engine_when_the_landmarks_are_certain():
    certain = Stub("landmarks", [_candidate(1, 2.0, 0.995)], lined={(2, 5.1): (30, 3)})
    learned = Stub("fingerprint:x", [_candidate(2, 5.0, 0.9)])
    assert FusedIdentifier(certain, learned).candidates(np.ones(SR)) == certain.answers
    assert learned.calls == 0
    both = FusedIdentifier(certain, learned, certain=None).candidates(np.ones(SR))
    assert {c.track_id for c in both} == {1, 2} and learned.calls == 1


def test_a_track_only_the_learned_engine_names_is_judged_with_the_landmarks_lined_up_at_its_offset():
    weights = Corroboration(bias=-4.0, per_logit=0.5, per_excess=3.5)
    learned = Stub(
        "fingerprint:x",
        [_candidate(2, 5.0, 0.3), _candidate(3, 40.0, 0.99), _candidate(4, 9.0, 0.6), _candidate(5, 1.0, 0.98)],
    )
    # track 2: unsure alone, but 12 landmarks line up where the learned engine puts it, 3 anywhere else;
    # track 3: sure alone, but nothing lines up there; track 4: one landmark; track 5: three there, but
    # five at another offset nearby (music sharing drum sounds and a tempo lines up at every beat)
    landmarks = Stub(
        "landmarks", [], lined={(2, 5.25): (12, 3), (3, 12.0): (20, 2), (4, 9.0): (1, 0), (5, 1.0): (3, 5)}
    )
    found = FusedIdentifier(landmarks, learned, corroboration=weights).candidates(np.ones(SR))
    assert [c.track_id for c in found] == [2]
    assert found[0].offset == 5.0
    assert found[0].confidence == pytest.approx(weights.confidence(0.3, 12, 3))
    assert weights.confidence(0.99, 0, 0) < 0.5 < weights.confidence(0.3, 12, 3)
    assert landmarks.lined_calls == 1  # one call for every placement


def test_the_landmarks_count_lined_up_landmarks_only_for_tracks_they_did_not_name():
    landmarks = Stub("landmarks", [_candidate(1, 2.0, 0.7)])
    found = FusedIdentifier(landmarks, Stub("fingerprint:x", [_candidate(1, 2.0, 0.2)])).candidates(np.ones(SR))
    assert landmarks.lined_calls == 0
    assert found[0].confidence == pytest.approx(1 - 0.3 * 0.8)  # both engines' evidence, the learned below 1/2 too


def test_a_corroboration_reads_back_from_its_record():
    weights = Corroboration(bias=-4.0, per_logit=0.5, per_excess=3.5)
    assert Corroboration(**weights.to_dict()) == weights
    assert weights.confidence(0.0, 0, 0) < 1e-6 and weights.confidence(1.0, 1000, 10) > 0.999999
    # a placement that does not stand above its background is no match, however sure the learned engine is
    assert weights.confidence(0.999, 5, 9) == weights.confidence(0.999, 3, 3) == 0.0 < weights.confidence(0.5, 3, 2)


def test_fusion_answers_when_one_engine_refuses_the_clip():
    refusing = Stub("landmarks", AudioError("clip.wav", "too little to fingerprint"))
    learned = Stub("fingerprint:x", [_candidate(2, 5.0, 0.9), _candidate(3, 1.0, 0.4)])
    assert [c.track_id for c in FusedIdentifier(refusing, learned).candidates(np.ones(SR))] == [2]
    with pytest.raises(AudioError, match="too little"):
        FusedIdentifier(refusing, Stub("fingerprint:x", AudioError("clip.wav", "nothing audible"))).candidates(
            np.ones(SR)
        )


def test_fusion_writes_to_both_and_only_pairs_engines_of_one_rate():
    first, second = Stub("landmarks", []), Stub("fingerprint:x", [])
    fused = FusedIdentifier(first, second)
    fused.add([(1, ("landmarks of 1", "vectors of 1"))])
    fused.remove([1])
    assert first.added == [(1, "landmarks of 1")] and second.added == [(1, "vectors of 1")]
    assert first.removed == second.removed == [1]
    assert fused.name == "landmarks+fingerprint:x"
    second.sample_rate = 11025
    with pytest.raises(Exception, match="11025 Hz"):
        FusedIdentifier(first, second)


def test_fuse_orders_by_fused_confidence():
    a, b = [_candidate(1, 0.0, 0.7), _candidate(2, 0.0, 0.6)], [_candidate(2, 0.5, 0.7), _candidate(3, 0.0, 0.9)]
    merged = fuse(a, b)
    assert [c.track_id for c in merged] == [3, 2, 1]
    assert merged[1].confidence == pytest.approx(1 - 0.4 * 0.3) and merged[1].offset == 0.0


def test_many_hypotheses_are_judged_in_batches_and_ranked_together():
    rng = np.random.default_rng(3)
    tracks = [(t, rng.standard_normal((60, 16))) for t in range(1, 31)]
    tracks = [(t, (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float16)) for t, v in tracks]
    view = View.of(1, tracks, 16, FaissStore)
    queries = tracks[20][1][10:30].astype(np.float32)  # track 21 from its 5th second, on its own grid
    found = search(view, queries, np.ones(len(queries), bool), phases=1, hypotheses=20)
    assert 8 < len(found) <= 20 and len({h.track_id for h in found}) == len(found)
    assert found[0].track_id == 21 and found[0].offset == 5.0
    assert [h.score for h in found] == sorted((h.score for h in found), reverse=True)


def test_margins_are_each_score_less_the_best_other_track():
    from tuneseek.fingerprint.learned import margins

    assert margins(np.array([5.0, 2.0, 1.0])).tolist() == [3.0, -3.0, -4.0]
    assert margins(np.array([4.0])).tolist() == [4.0]


def test_a_calibration_fitted_with_margins_weighs_them_and_reads_back():
    rng = np.random.default_rng(0)
    # scores alone overlap (a small library's ranks saturate); the margin over the best other track does not
    true_score, false_score = rng.normal(8.5, 0.8, 200), rng.normal(7.5, 0.8, 800)
    true_margin, false_margin = rng.normal(5.0, 1.0, 200), rng.normal(-1.0, 1.0, 800)
    scores = np.concatenate([true_score, false_score])
    margin = np.concatenate([true_margin, false_margin])
    n = np.full(len(scores), 11)
    truth = np.arange(len(scores)) < 200
    with_margin = calibrate(scores, n, truth, margin=margin)
    alone = calibrate(scores, n, truth)
    right = lambda c, m: np.mean((c.confidence(scores, n, margin=m) >= 0.5) == truth)  # noqa: E731
    assert with_margin.per_margin > 0 and alone.per_margin == 0.0
    assert right(with_margin, margin) > 0.98 > right(alone, 0.0)
    assert Calibration(**with_margin.to_dict()) == with_margin
