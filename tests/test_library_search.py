"""Finding music by describing it in a library: `Library.search`, `Library.embed_text`, `tuneseek search`.

The tracks' tags are written into the catalogue directly (as `index` would store them), with
probabilities chosen so that the right answer is known: zero-shot search reads nothing else.
"""

import json

import numpy as np
import pytest
import soundfile as sf

from tuneseek.cli import main
from tuneseek.embed.weights import MSD_LABELS, MTT_LABELS
from tuneseek.errors import LibraryError, UsageError
from tuneseek.library import Library
from tuneseek.synth import synth_catalog

SR = 16000
# track file -> the MTT tags it has (everything else low)
TAGGED = {
    "piano.wav": {"piano": 0.9, "classical": 0.7, "no vocal": 0.8, "slow": 0.6, "quiet": 0.6, "soft": 0.6},
    "singer.wav": {"female vocal": 0.9, "vocal": 0.9, "pop": 0.8, "female": 0.8, "woman": 0.7, "vocals": 0.8},
    "metal.wav": {"metal": 0.9, "drums": 0.9, "loud": 0.9, "rock": 0.8, "guitar": 0.8, "fast": 0.7, "male vocal": 0.6},
    "ambient.wav": {"ambient": 0.9, "synth": 0.7, "electronic": 0.6, "no vocal": 0.8, "instrumental": 0.7, "slow": 0.8},
}


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    music = root / "music"
    music.mkdir()
    for name, t in zip(TAGGED, synth_catalog(len(TAGGED), duration=5.0, sr=SR, seed=4)):
        sf.write(music / name, t.audio, SR)
    with Library.open(root / "lib") as lib:
        lib.add([music], workers=1, analyse=False)
        for track in lib.tracks():
            wanted = TAGGED[track.path.rsplit("/", 1)[1]]
            mtt = np.array([wanted.get(tag, 0.05) for tag in MTT_LABELS], np.float32)
            lib.set_tags(track, vocabulary="mtt", probs=mtt, labels=list(MTT_LABELS))
            lib.set_tags(
                track, vocabulary="msd", probs=np.full(len(MSD_LABELS), 0.1, np.float32), labels=list(MSD_LABELS)
            )
    return root / "lib"


def first(lib, query):
    return lib.search(query, k=4).hits[0].track.path.rsplit("/", 1)[1]


@pytest.mark.parametrize(
    "query, expected",
    [
        ("calm solo piano", "piano.wav"),
        ("a woman singing pop", "singer.wav"),
        ("aggressive metal with fast drums", "metal.wav"),
        ("dark ambient drone", "ambient.wav"),
    ],
)
def test_zero_shot_search_finds_the_described_track(library, query, expected):
    with Library.open(library) as lib:
        assert first(lib, query) == expected


def test_no_vocals_never_ranks_the_singer_first_and_says_which_tags_it_used(library):
    with Library.open(library) as lib:
        result = lib.search("no vocals", k=4)
        assert result.mode == "zero-shot" and "all-MiniLM-L6-v2" in result.model
        names = [h.track.path.rsplit("/", 1)[1] for h in result.hits]
        assert names[0] in ("piano.wav", "ambient.wav") and names[-1] in ("singer.wav", "metal.wav")
        assert "matched tags:" in result.explanation and "-" in result.explanation  # a negated tag has a minus weight


def test_a_bad_query_or_k_is_refused_and_a_long_one_is_cut_with_a_notice(library):
    with Library.open(library) as lib:
        with pytest.raises(UsageError, match="empty query"):
            lib.search("   ")
        with pytest.raises(UsageError, match="k must be at least 1"):
            lib.search("piano", k=0)
        result = lib.search("piano " * 400, k=1)
        assert result.notices and "only its start was used" in result.notices[0]


def test_a_library_without_tags_says_how_to_get_them(tmp_path):
    with Library.open(tmp_path / "lib") as lib:
        with pytest.raises(LibraryError, match="no track has tags yet"):
            lib.search("piano")


def test_embed_text_without_a_trained_model_gives_the_sentence_vector(library):
    with Library.open(library) as lib:
        vector, space = lib.embed_text("dark techno with heavy bass")
    assert space == "all-MiniLM-L6-v2" and vector.shape == (384,)
    assert abs(float(np.linalg.norm(vector)) - 1) < 1e-5


def test_cli_search_prints_the_mode_the_tags_and_ranked_tracks(library, capsys):
    assert main(["--library", str(library), "search", "calm", "solo", "piano", "-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("zero-shot from musicnn tags") and lines[1].strip().startswith("matched tags:")
    assert "piano.wav" in lines[2] and len(lines) == 4
    assert main(["--library", str(library), "search", "--json", "no vocals, ambient, slow"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mode"] == "zero-shot" and out["results"][0]["path"].endswith("ambient.wav")
    assert main(["--library", str(library), "search", " "]) == 1
    assert "empty query" in capsys.readouterr().err


def test_cli_embed_text_prints_one_vector(library, capsys):
    assert main(["--library", str(library), "embed", "--text", "calm solo piano"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["space"] == "all-MiniLM-L6-v2" and len(out["vector"]) == 384
    assert main(["--library", str(library), "embed", "--text", "piano", "song.wav"]) == 1
