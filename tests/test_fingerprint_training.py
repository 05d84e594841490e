"""Training the learned fingerprint (``tuneseek train fingerprint``) on tiny generated music.

The pairs (anchor, degraded positive) are checked for what they promise: audible anchors, a positive cut
where the music went (time offset, speed), fixed validation pairs, babble in the speech band, real samples
of the origin/sample layout at their offset. The runs use a tiny network, so they check the machinery
(run folder, resume, refusals, CLI) and that it learns on an easy set, not how well.
"""

import dataclasses
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from tuneseek.cli import main
from tuneseek.data.datasets import Item, open_dataset
from tuneseek.degrade import Degradation, degrade
from tuneseek.embed.trained import load_trained
from tuneseek.errors import DatasetError, UsageError
from tuneseek.models.fingerprint_net import FINGERPRINT_SPEC
from tuneseek.synth import synth_catalog
from tuneseek.train import defaults
from tuneseek.train import fingerprint_pairs as fp
from tuneseek.train import items as it
from tuneseek.train.fingerprint_eval import hit_rates, segment_rates
from tuneseek.train.metrics import segment_top1
from tuneseek.train.run import TrainSettings, train
from tuneseek.train.tasks import nt_xent, overlapping

SR = 8000
TINY = {"dim": 16, "width": 4, "hidden": 16}
STILL = dataclasses.replace(fp.PairAugment.offsets_only(), max_offset=0.0)


def quiet(_msg):
    pass


@pytest.fixture(scope="module")
def music(tmp_path_factory):
    """Five 6 s synthetic tracks at 8 kHz: three to train on, one to validate, one to test."""
    root = tmp_path_factory.mktemp("fp-music")
    for t in synth_catalog(5, duration=6.0, sr=SR, seed=21):
        sf.write(root / f"{t.name}.wav", t.audio, SR)
    return root


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    """The origin/sample layout: per split, origins of 6 s and two clean samples of each (2 s, named by span)."""
    root = tmp_path_factory.mktemp("fp-queries")
    tracks = synth_catalog(5, duration=6.0, sr=SR, seed=22)
    for split, chosen in (("train", tracks[:3]), ("valid", tracks[3:4]), ("test", tracks[4:])):
        for t in chosen:
            (root / split / "origin" / t.name).mkdir(parents=True)
            (root / split / "sample" / t.name).mkdir(parents=True)
            sf.write(root / split / "origin" / t.name / f"{t.name}.wav", t.audio, SR)
            for start_ms in (500, 3000):
                part = t.audio[start_ms * SR // 1000 : (start_ms + 2000) * SR // 1000]
                sf.write(root / split / "sample" / t.name / f"{t.name}_{start_ms}_{start_ms + 2000}.wav", part, SR)
    return root


def cached(folder, cache):
    items = [Item(key=p.name, path=p, labels=(), group=p.name) for p in sorted(folder.glob("*.wav"))]
    usable, _, failed = it.usable(items, None, sample_rate=SR, cache=cache)
    assert not failed
    return usable


def settings(tmp_path, data, **kw) -> TrainSettings:
    base = dict(
        kind="fingerprint",
        data=data,
        out=str(tmp_path / "run"),
        model_options=dict(TINY),
        epochs=1,
        batch_size=8,
        windows_per_item=4,
        loader_workers=0,
        cache=str(tmp_path / "cache"),
    )
    base.update(kw)
    return TrainSettings(**base)


# ----------------------------------------------------------------------------- pairs


def test_validation_pairs_are_audible_apart_and_the_same_every_time(music, tmp_path):
    items = cached(music, tmp_path / "cache")
    pairs = fp.FingerprintPairs(items, spec=FINGERPRINT_SPEC, cache=tmp_path / "cache", seed=3)
    again = fp.FingerprintPairs(items, spec=FINGERPRINT_SPEC, cache=tmp_path / "cache", seed=3)
    assert len(pairs) == 5 * 6  # every other 0.5 s segment of each 6 s track: 6 that do not overlap
    for i in (0, 7, 29):
        (x, where), (y, where_again) = pairs[i], again[i]
        assert torch.equal(x, y) and torch.equal(where, where_again) and x.shape == (2, SR)
        assert float(x[0].square().mean().sqrt()) > 1e-3  # an audible anchor
    starts = [s for i, s in pairs.fixed if i == 0]
    assert np.all(np.diff(starts) >= SR)


def test_a_still_positive_is_its_anchor_and_a_sped_up_one_follows_the_music(music, tmp_path):
    items = cached(music, tmp_path / "cache")
    still = fp.FingerprintPairs(items, spec=FINGERPRINT_SPEC, cache=tmp_path / "cache", augment=STILL)
    x, _ = still[4]
    assert torch.equal(x[0], x[1])
    fast = dataclasses.replace(STILL, speed_prob=1.0, max_speed=0.05)
    pairs = fp.FingerprintPairs(items, spec=FINGERPRINT_SPEC, cache=tmp_path / "cache", augment=fast)
    x, where = pairs[3]
    i, start = int(where[0]), int(where[1])
    music_from_start = it._as_float(pairs.source(i))[start : start + 2 * SR]
    match = max(  # the positive is the music from the anchor's start, played at some speed within 5 %
        np.corrcoef(degrade(music_from_start, SR, [Degradation("speed", f)])[200:2000], x[1][200:2000])[0, 1]
        for f in np.linspace(0.95, 1.05, 201)
    )
    assert match > 0.95


def test_babble_lies_in_the_speech_band(music, tmp_path):
    items = cached(music, tmp_path / "cache")
    pairs = fp.FingerprintPairs(items, spec=FINGERPRINT_SPEC, cache=tmp_path / "cache")
    noise = pairs.babble(2 * SR, np.random.default_rng(0), besides=0)
    power = np.abs(np.fft.rfft(noise)) ** 2
    f = np.fft.rfftfreq(len(noise), 1 / SR)
    inside = power[(f > 300) & (f < 3400)].sum()
    assert inside > 0.95 * power.sum()


def test_training_pairs_are_new_each_draw_and_cost_a_few_milliseconds(music, tmp_path):
    import time

    items = cached(music, tmp_path / "cache")
    pairs = fp.FingerprintPairs(items, spec=FINGERPRINT_SPEC, cache=tmp_path / "cache", train=True, pairs_per_item=40)
    torch.manual_seed(0)
    first = pairs[0][0]
    started = time.perf_counter()
    for i in range(100):
        pairs[i]
    per_pair = (time.perf_counter() - started) / 100
    assert len(pairs) == 200 and not torch.equal(first, pairs[0][0])
    assert per_pair < 0.1  # about 5-10 ms on one core; generous for a loaded machine


def test_the_layouts_samples_are_positives_at_their_offset(layout, tmp_path):
    ds = open_dataset(f"queries:{layout}")
    items, _, _ = it.usable(ds.splits["valid"], None, sample_rate=SR, cache=tmp_path / "cache")
    real, failed = fp.real_samples(ds, "valid", items, sample_rate=SR, cache=tmp_path / "cache")
    assert not failed and [len(s) for s in real.values()] == [2]
    pairs = fp.FingerprintPairs(
        items, spec=FINGERPRINT_SPEC, cache=tmp_path / "cache", augment=STILL, samples=real, sample_share=1.0
    )
    # the anchors that two samples hold (1-2 s, 3-4 s of the origin, with 0.25 s to spare) come from them
    x, where = pairs[1]
    assert int(where[1]) == SR and np.abs(x[0].numpy() - x[1].numpy()).max() < 1e-3
    summary = fp.summary(pairs, pairs)
    assert summary["valid_real_samples"] == 2 and summary["valid_pairs"] == 6


def test_a_silent_track_is_left_out(music, tmp_path):
    quiet_folder = tmp_path / "music"
    quiet_folder.mkdir()
    for p in sorted(music.glob("*.wav"))[:2]:
        quiet_folder.joinpath(p.name).write_bytes(p.read_bytes())
    sf.write(quiet_folder / "hum.wav", np.full(3 * SR, 2e-4, np.float32) * np.sign(np.sin(np.arange(3 * SR))), SR)
    items = cached(quiet_folder, tmp_path / "cache")
    pairs = fp.FingerprintPairs(items, spec=FINGERPRINT_SPEC, cache=tmp_path / "cache")
    assert [i.key for i in pairs.silent] == ["hum.wav"] and len(pairs.items) == 2


def test_augment_options_change_the_chain_and_bad_ones_are_one_line():
    chain = fp.PairAugment.of({"pitch_prob": 0.3, "snr_db": [0, 10]})
    assert chain.pitch_prob == 0.3 and chain.snr_db == (0, 10) and chain.noise_prob == fp.PairAugment().noise_prob
    assert fp.PairAugment.of({"pitch_prob": 0.3}, augment=False).noise_prob == 0
    for bad, message in (
        ({"pitch": 1}, "unknown augment option 'pitch'"),
        ({"noise_prob": 2}, "noise_prob is a probability"),
        ({"snr_db": [10, 0]}, "snr_db is"),
        ({"mp3_kbps": [17]}, "not an MP3 bit rate"),
        ({"max_speed": 0.1}, "max_offset \\+ max_speed <= 0.3"),
    ):
        with pytest.raises(UsageError, match=message):
            fp.PairAugment.of(bad)


# ----------------------------------------------------------------------------- loss and metric


def test_nt_xent_is_low_for_matched_pairs_and_overlapping_anchors_are_no_negatives():
    z = torch.nn.functional.normalize(torch.randn(8, 16), dim=1)
    matched = nt_xent(z, z.clone(), temperature=0.05)
    shuffled = nt_xent(z, z.roll(1, dims=0), temperature=0.05)
    assert matched < 0.1 < shuffled
    twins = torch.cat([z[:4], z[:4]])  # rows 0-3 and 4-7 the same music
    where = torch.tensor([[0, 0], [1, 0], [2, 0], [3, 0], [0, 100], [1, 100], [2, 100], [3, 100]])
    same = overlapping(where, samples=8000)
    assert same.sum() == 16
    assert nt_xent(twins, twins, temperature=0.05, same=same) < 0.1 < nt_xent(twins, twins, temperature=0.05)


def test_segment_top1_counts_own_anchors_and_ties_against():
    anchors = np.eye(4, dtype=np.float32)
    assert segment_top1(anchors, anchors) == 1.0
    assert segment_top1(anchors[[1, 0, 2, 3]], anchors) == 0.5
    assert segment_top1(np.ones((4, 4), np.float32) / 2, anchors) == 0.0


def test_defaults_count_pairs_and_bound_a_cpu_run():
    small = defaults.choose_fingerprint(items=32, segments_held=59, batch_size=64, on_cpu=True)
    assert small["windows_per_item"] == 59 and small["lr"] == defaults.FINGERPRINT_LR
    steps = -(-32 * 59 // 64)
    assert small["epochs"] == -(-defaults.FINGERPRINT_STEPS["cpu"] // steps)
    large = defaults.choose_fingerprint(items=200_000, segments_held=400, batch_size=64, on_cpu=True)
    assert large["windows_per_item"] == 1 and large["epochs"] == defaults.FINGERPRINT_MIN_EPOCHS
    assert defaults.batch_size("fingerprint") == 64 and defaults.batch_size("genre") == 16


# ----------------------------------------------------------------------------- runs


def test_a_run_writes_a_loadable_fingerprint_folder_and_resumes(music, tmp_path):
    summary = train(settings(tmp_path, f"folder:{music}"), say=quiet)
    run = tmp_path / "run"
    for name in ("config.json", "model.safetensors", "summary.json", "training-curves.png", "lightning/last.ckpt"):
        assert (run / name).exists(), name
    assert summary["monitor"] == "val_top1" and summary["task"] == "fingerprint" and 0 <= summary["best"] <= 1
    assert summary["pairs"]["valid_pairs"] == 6 and summary["settings"]["batch_size"] == 8
    model = load_trained(run)
    assert model.kind == "fingerprint" and model.window == 1.0 and model.sample_rate == SR
    times, vectors = model.vectors(np.random.default_rng(0).standard_normal(2 * SR).astype(np.float32), hop=0.5)
    assert vectors.shape == (3, 16) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    with pytest.raises(UsageError, match="is a fingerprint model .* it has no tags"):
        model.tags(np.zeros(SR, np.float32))
    resumed = train(settings(tmp_path, f"folder:{music}", epochs=2, resume=True), say=quiet)
    assert resumed["epochs_run"] == 2 and (run / "logs" / "run-2" / "metrics.csv").exists()


def test_the_same_seed_trains_the_same_fingerprint(music, tmp_path):
    for name in ("a", "b"):
        train(settings(tmp_path / name, f"folder:{music}", out=str(tmp_path / name / "run"), seed=4), say=quiet)
    assert (tmp_path / "a" / "run" / "model.safetensors").read_bytes() == (
        tmp_path / "b" / "run" / "model.safetensors"
    ).read_bytes()


def test_the_layout_trains_with_its_samples_and_the_cli_reports(layout, tmp_path, capsys):
    code = main(
        [
            "train",
            "fingerprint",
            "--data",
            f"queries:{layout}",
            "--out",
            str(tmp_path / "run"),
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--windows-per-item",
            "4",
            "--loader-workers",
            "0",
            "--cache",
            str(tmp_path / "cache"),
            *("--model-option", "dim=16", "--model-option", "width=4", "--model-option", "hidden=16"),
            *("--augment-option", "pitch_prob=0"),
            "--json",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["pairs"]["train_real_samples"] == 6 and summary["pairs"]["valid_real_samples"] == 2
    assert summary["settings"]["temperature"] == 0.05 and summary["dataset"]["split_source"] == "official"
    assert (
        summary["settings"]["augment_options"] == {"pitch_prob": 0} and summary["pairs"]["augment"]["pitch_prob"] == 0
    )


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ([], "no audio files"),
        (["one.wav"], "1 audio file(s); at least 3 are needed"),
    ],
)
def test_a_folder_without_enough_music_is_refused_in_one_line(music, tmp_path, capsys, files, expected):
    folder = tmp_path / "data"
    folder.mkdir()
    for name, source in zip(files, sorted(music.glob("*.wav"))):
        folder.joinpath(name).write_bytes(source.read_bytes())
    with pytest.raises(DatasetError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        train(settings(tmp_path, f"folder:{folder}"), say=quiet)
    assert main(["train", "fingerprint", "--data", f"folder:{folder}", "--out", str(tmp_path / "cli")]) == 1
    err = capsys.readouterr().err.strip()
    assert expected in err and "\n" not in err and "Traceback" not in err


def test_a_corrupt_file_is_left_out_with_a_line_naming_it(music, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for p in sorted(music.glob("*.wav")):
        folder.joinpath(p.name).write_bytes(p.read_bytes())
    (folder / "broken.wav").write_bytes(b"RIFF not really a wave file")
    lines = []
    summary = train(settings(tmp_path, f"folder:{folder}"), say=lines.append)
    said = [line for line in lines if "broken.wav" in line]
    assert len(said) == 1 and said[0].startswith("left out ")
    assert [e["path"] for e in summary["left_out"]] == [str(folder / "broken.wav")]


def test_options_that_do_not_fit_a_fingerprint_are_refused(music, tmp_path, capsys):
    for bad, message in (
        (dict(window=2.0), "segment is 1 s"),
        (dict(arch="fcn"), "its own architecture"),
        (dict(temperature=0.0), "temperature must be above 0"),
    ):
        with pytest.raises(UsageError, match=message):
            train(settings(tmp_path, f"folder:{music}", **bad), say=quiet)
    with pytest.raises(UsageError, match="trained by `train fingerprint`"):
        train(settings(tmp_path, f"folder:{music}", kind="genre", arch="fingerprint"), say=quiet)
    base = ["train", "fingerprint", "--data", f"folder:{music}", "--out", str(tmp_path / "x")]
    for extra, message in (
        (["--width", "4.5"], "a whole number"),
        (["--from", "musicnn"], "trained from scratch"),
        (["--augment-option", "pitch-prob=2"], "pitch_prob is a probability"),
    ):
        assert main(base + extra) == 1
        assert message in capsys.readouterr().err
    assert main(["train", "genre", "--data", f"folder:{music}", "--out", str(tmp_path / "x"), "--temperature", "1"])
    assert "--temperature is for `train fingerprint`" in capsys.readouterr().err
    with pytest.raises(UsageError, match="augment options are for a fingerprint"):
        train(settings(tmp_path, f"folder:{music}", kind="genre", augment_options={"pitch_prob": 1}), say=quiet)


def test_it_learns_an_easy_set(music, tmp_path):
    """Still positives shifted by up to a quarter second: the loss falls and the held-out top-1 beats chance."""
    s = settings(
        tmp_path, f"folder:{music}", epochs=4, windows_per_item=16, batch_size=16, augment=False, lr=3e-3, patience=10
    )
    summary = train(s, say=quiet)
    from tuneseek.plots import read_epoch_metrics

    per_epoch = read_epoch_metrics(sorted((tmp_path / "run" / "logs").glob("run-*/metrics.csv")))
    loss = per_epoch["train_loss"]
    assert loss[max(loss)] < loss[0]
    assert summary["best"] >= 2 / summary["pairs"]["valid_pairs"]  # twice chance (one in six) at least


# ----------------------------------------------------------------------------- segment-level evaluation


def test_hit_rates_ask_for_the_right_track_near_the_right_time():
    index = (np.array(["a", "a", "b"]), np.array([0.0, 0.5, 0.0]), np.eye(3, dtype=np.float32))
    queries = (
        np.array(["a", "a", "a", "b"]),
        np.array([0.1, 0.1, 1.5, 0.0]),  # the 2nd is found at 0.5 s (near), the 3rd at 0.5 s (a second off)
        np.eye(3, dtype=np.float32)[[0, 1, 1, 0]],  # the 4th finds track a
    )
    assert hit_rates(index, queries) == {"exact": 0.25, "near": 0.5, "track": 0.75}


def test_segment_rates_of_a_run_on_the_layouts_test_split(layout, music, tmp_path):
    train(settings(tmp_path, f"queries:{layout}"), say=quiet)
    rates = segment_rates(tmp_path / "run", data=f"queries:{layout}", split="test", cache=tmp_path / "cache", say=quiet)
    assert rates["index_segments"] == 11 and rates["query_segments"] == 6 and rates["samples"] == 2
    assert 0 <= rates["exact"] <= rates["near"] <= rates["track"] <= 1 and rates["left_out"] == []
    with pytest.raises(UsageError, match="not the origin/sample layout"):
        segment_rates(tmp_path / "run", data=f"folder:{music}", cache=tmp_path / "cache")
