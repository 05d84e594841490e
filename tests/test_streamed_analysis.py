"""Tags and embeddings of a file are computed window by window as it decodes, equal to one pass over
the whole signal; audio shorter than the model's window is refused; torch's threads are set once.

The networks have random weights (musicnn through the stand-in wheel, trained runs untrained):
these tests check that streaming changes nothing, not what the tags say.
"""

import os

import numpy as np
import pytest
import soundfile as sf
import torch

from training_data import save_run
from tuneseek import Library, analysis, audio
from tuneseek.cli import main
from tuneseek.embed.musicnn_extractor import (
    PATCH_FRAMES,
    LogmelStream,
    MusicnnStream,
    WindowBatches,
    embed,
    run_windows,
    tag_over_time,
)
from tuneseek.embed.trained import load_trained
from tuneseek.errors import AudioError
from tuneseek.features import musicnn_logmel
from tuneseek.synth import synth_track

SR = 16000


@pytest.fixture(scope="module")
def signal() -> np.ndarray:
    """75 s of synthetic music at 16 kHz: three 30 s decoding chunks, many network batches."""
    return synth_track(3, duration=75.0, sr=SR)


@pytest.fixture(scope="module")
def song(tmp_path_factory, signal):
    path = tmp_path_factory.mktemp("streamed") / "song.wav"
    sf.write(path, signal, SR, subtype="FLOAT")
    return path


@pytest.fixture
def no_whole_decoding(monkeypatch):
    """Fail any attempt to decode a file whole: what is measured here must stream."""

    def refuse(*args, **kwargs):
        raise AssertionError("decoded the whole file")

    monkeypatch.setattr(audio, "load", refuse)


def test_streamed_logmel_equals_one_pass(signal):
    whole = musicnn_logmel(signal)
    for piece in (16000, 480000, 12345):
        stream = LogmelStream()
        got = np.concatenate(
            [*(stream.feed(signal[i : i + piece]) for i in range(0, len(signal), piece)), stream.finish()]
        )
        assert got.shape == whole.shape
        np.testing.assert_allclose(got, whole, atol=1e-5)


@pytest.mark.parametrize(("n", "h", "per_batch"), [(187, 187, 21), (10, 3, 4), (5, 9, 2), (1000, 1, 3), (1001, 5, 2)])
def test_window_batches_cut_the_windows_of_one_pass(n, h, per_batch):
    items = np.arange(1000)
    batches = WindowBatches(
        n, h, per_batch=per_batch, run=lambda block: np.lib.stride_tricks.sliding_window_view(block, n)[::h]
    )
    for i in range(0, 1000, 37):
        batches.feed(items[i : i + 37])
    results = batches.finish()
    got = np.concatenate(results) if results else np.zeros((0, n), int)
    want = np.lib.stride_tricks.sliding_window_view(items, n)[::h] if n <= 1000 else np.zeros((0, n), int)
    np.testing.assert_array_equal(got, want)
    assert all(len(r) == per_batch for r in results[:-1])


@pytest.mark.slow
def test_musicnn_stream_equals_one_pass_for_every_request(standin_models, signal):
    from tuneseek.embed.weights import load_musicnn

    torch.set_num_threads(1)
    net = load_musicnn("mtt", models_dir=standin_models)[0]
    requests = [
        (net, PATCH_FRAMES, PATCH_FRAMES, ("prob",)),
        (net, 231, 115, ("penultimate",)),
        (net, 31, 7, ("max_pool", "mean_pool")),
    ]
    stream = MusicnnStream(requests, batch_frames=1024)
    for i in range(0, len(signal), 480000):
        stream.feed(signal[i : i + 480000])
    logmel = musicnn_logmel(signal)
    for (model, n, h, outputs), (starts, out) in zip(requests, stream.finish()):
        want_starts, want = run_windows(logmel, model, n, h, outputs=outputs, batch_frames=1024)
        np.testing.assert_array_equal(starts, want_starts)
        for k in outputs:
            np.testing.assert_allclose(out[k], want[k], atol=1e-5)


@pytest.mark.slow
def test_tag_embed_and_describe_stream_and_equal_the_whole_signal(with_models, song, signal, no_whole_decoding):
    net = analysis.model("mtt")
    times, curve = tag_over_time(signal, net)
    tags = Library.tag_file(song, model="mtt")
    np.testing.assert_allclose(tags.times, times)
    np.testing.assert_allclose(tags.curve, curve, atol=1e-5)
    want_t, want_v = embed(signal, net, window=2.0, hop=0.5, layer="max_pool")
    emb = Library.embed_file(song, window=2.0, hop=0.5, layer="max_pool")
    np.testing.assert_allclose(emb.times, want_t)
    np.testing.assert_allclose(emb.vectors, want_v, atol=1e-5)
    described = analysis.describe_file(song, ["tags:mtt", "tags:msd", "embedding:musicnn"])
    assert described.duration == pytest.approx(75.0) and not described.skipped
    np.testing.assert_allclose(described.tags["mtt"], curve.mean(axis=0), atol=1e-5)
    segments = embed(signal, net, window=analysis.SEGMENT_WINDOW, hop=analysis.SEGMENT_HOP)[1]
    np.testing.assert_allclose(described.embeddings["musicnn"].vectors, segments, atol=1e-5)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {
        "tagger": save_run(
            root / "tagger",
            "crnn",
            "multi-label",
            ("a", "b", "c"),
            n_outputs=3,
            window_seconds=2.0,
            channels=[4, 8],
            hidden=8,
        ),
        "long": save_run(root / "long-embedder", "resnet18", "triplet", dim=16, window_seconds=8.0, width=0.125),
    }


def test_a_trained_model_streams_and_equals_the_whole_signal(runs, song, no_whole_decoding, monkeypatch):
    from tuneseek.embed import trained

    monkeypatch.setattr(trained, "BATCH_SAMPLES", 200_000)  # several batches over 75 s
    m = load_trained(runs["tagger"])
    x = np.concatenate(list(audio.stream(song, m.sample_rate)))  # the whole file, at the model's rate
    want_times, want = m.tags(x)
    tags = Library.tag_file(song, model=str(runs["tagger"]))
    np.testing.assert_allclose(tags.times, want_times)
    np.testing.assert_allclose(tags.curve, want, atol=1e-5)
    want_times, want = m.vectors(x, hop=0.7)
    emb = Library.embed_file(song, hop=0.7, model=str(runs["tagger"]))
    np.testing.assert_allclose(emb.times, want_times)
    np.testing.assert_allclose(emb.vectors, want, atol=1e-5)


def write(path, seconds: float, sr: int = 22050):
    sf.write(path, synth_track(5, duration=seconds, sr=sr), sr)
    return path


def test_audio_shorter_than_musicnn_window_is_refused_naming_file_and_length(with_models, tmp_path):
    clip = write(tmp_path / "clip.wav", 1.0)
    message = r"clip.wav: too short: 1.00 s \(at least 3 s, musicnn's input window\)"
    with pytest.raises(AudioError, match=message):
        Library.tag_file(clip)
    with pytest.raises(AudioError, match=message):
        Library.embed_file(clip)
    with pytest.raises(AudioError, match=message):
        analysis.describe_file(clip, ["tags:mtt"])
    # a window shorter than 3 s needs only itself; 3.2 s fills one 3.7 s window, mostly real music
    assert Library.embed_file(clip, window=0.5, hop=0.5).vectors.shape == (2, 200)
    assert Library.embed_file(write(tmp_path / "three.wav", 3.2)).vectors.shape == (1, 200)


def test_the_commands_and_similar_refuse_a_one_second_clip(with_models, tmp_path, capsys):
    clip = write(tmp_path / "clip.wav", 1.0)
    for command in (["tag", clip], ["embed", clip]):
        assert main([str(a) for a in command]) == 1
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "clip.wav: too short: 1.00 s" in err
    with Library.open(tmp_path / "lib") as lib:
        lib.add([write(tmp_path / "song.wav", 8.0)], workers=1)
        with pytest.raises(AudioError, match=r"clip.wav: too short: 1.00 s"):
            lib.similar(clip)


def test_a_trained_model_refuses_audio_shorter_than_its_window(with_models, runs, tmp_path):
    clip = write(tmp_path / "five.wav", 5.0)
    with pytest.raises(AudioError, match=r"five.wav: too short: 5.00 s \(at least 8 s, the window of long-embedder\)"):
        Library.embed_file(clip, model=str(runs["long"]))
    # the library still gets musicnn's tags and embeddings; the trained model is left out, and says why
    d = analysis.describe_file(
        clip, ["tags:mtt", "embedding:long-embedder"], trained={"embedding:long-embedder": str(runs["long"])}
    )
    assert d.extractors == ("tags:mtt",) and set(d.tags) == {"mtt"} and not d.embeddings
    assert d.skipped == (("embedding:long-embedder", "too short: 5.00 s (at least 8 s, the window of long-embedder)"),)


def test_torch_threads_are_set_once_from_the_free_physical_cores(monkeypatch):
    before = torch.get_num_threads()
    try:
        analysis.use_cores.cache_clear()
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert analysis.use_cores() == torch.get_num_threads() == before  # the environment decides
        analysis.use_cores.cache_clear()
        monkeypatch.delenv("OMP_NUM_THREADS")
        monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
        monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
        assert analysis.use_cores() == torch.get_num_threads() == analysis._physical_cores()
        analysis.use_cores.cache_clear()
        monkeypatch.setattr(os, "getloadavg", lambda: (1000.0, 0.0, 0.0))
        assert analysis.use_cores() == torch.get_num_threads() == 1
    finally:
        analysis.use_cores.cache_clear()
        torch.set_num_threads(before)
