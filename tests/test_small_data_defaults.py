"""Settings chosen for the size of the data, the ``classifier`` kind that follows its dataset, and the
summary's notes on how a run went."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from training_data import SR, write_styles
from tuneseek.data.datasets import Item
from tuneseek.errors import UsageError
from tuneseek.models import checkpoint
from tuneseek.models.frontend import MelSpec
from tuneseek.train import defaults
from tuneseek.train import items as it
from tuneseek.train.run import TrainSettings, architecture, choose_settings, run_notes, train


def quiet(_msg):
    pass


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --------------------------------------------------------------------------- the choice


def test_a_few_hundred_clips_get_several_windows_an_epoch_more_epochs_and_more_patience():
    small = defaults.choose(items=300, windows_held=10, batch_size=16, pretrained=False)
    assert small["windows_per_item"] == 2  # 600 windows: 38 optimizer steps an epoch, not 19
    assert small["epochs"] == 79 and small["patience"] == 11 and small["lr"] == 1e-3
    assert "frontend_lr_scale" not in small
    # whole-clip windows cannot be drawn twice: epochs make up the steps instead
    whole = defaults.choose(items=300, windows_held=1, batch_size=16, pretrained=False)
    assert whole["windows_per_item"] == 1 and whole["epochs"] == 158 and whole["patience"] == 22


def test_a_pretrained_network_gets_a_gentler_rate_and_fewer_steps():
    chosen = defaults.choose(items=300, windows_held=10, batch_size=16, pretrained=True)
    assert chosen == {"windows_per_item": 2, "epochs": 30, "patience": 7, "lr": 3e-4, "frontend_lr_scale": 0.1}
    on_cpu = defaults.choose(items=300, windows_held=10, batch_size=16, pretrained=True, on_cpu=True)
    assert on_cpu["frontend_lr_scale"] == 0.0  # training the front end on a CPU costs 9x: frozen unless asked


def test_a_large_dataset_keeps_the_fixed_defaults_and_a_tiny_one_is_bounded():
    assert defaults.choose(items=19000, windows_held=10, batch_size=16, pretrained=False) == {
        "windows_per_item": 1,
        "epochs": 30,
        "patience": 5,
        "lr": 1e-3,
    }
    tiny = defaults.choose(items=3, windows_held=1, batch_size=16, pretrained=False)
    assert tiny["epochs"] == defaults.MAX_EPOCHS and tiny["patience"] == defaults.MAX_PATIENCE


def test_explicit_values_win_and_only_the_others_are_chosen(tmp_path):
    s = TrainSettings(kind="genre", data="folder:x", out=str(tmp_path), epochs=7, windows_per_item=1)
    used, chosen = choose_settings(s, items=300, windows_held=10)
    assert used.epochs == 7 and used.windows_per_item == 1
    assert chosen == {"patience": 22, "lr": 1e-3}  # counted with the one window per item asked for
    assert used.patience == 22 and used.lr == 1e-3 and used.frontend_lr_scale is None
    fine = TrainSettings(kind="genre", data="folder:x", out=str(tmp_path), pretrained="musicnn", frontend_lr_scale=0)
    used, chosen = choose_settings(fine, items=300, windows_held=10)
    assert used.frontend_lr_scale == 0 and "frontend_lr_scale" not in chosen and used.lr == 3e-4


def test_the_notes_say_when_validation_never_improved_or_was_still_improving():
    flat = run_notes({0: 0.4, 1: 0.4, 2: 0.3}, monitor="val_balanced_accuracy", pretrained=False)
    assert len(flat) == 1 and flat[0].startswith("validation never improved after epoch 1")
    assert "--from musicnn" in flat[0]
    assert "--from musicnn" not in run_notes({0: 0.5, 1: 0.4}, monitor="m", pretrained=True)[0]
    rising = run_notes({0: 0.3, 1: 0.4, 2: 0.5}, monitor="m", pretrained=False)
    assert rising == ["still improving at the last epoch (best = last, 3): more --epochs would likely help"]
    assert run_notes({0: 0.3, 1: 0.5, 2: 0.4}, monitor="m", pretrained=False) == []
    assert run_notes({0: 0.3}, monitor="m", pretrained=False) == []


def test_the_classifier_kind_follows_its_dataset(tmp_path):
    s = TrainSettings(kind="classifier", data="folder:x", out=str(tmp_path))
    assert architecture(s, "single-label") == "crnn" and architecture(s, "multi-label") == "fcn"
    fine = TrainSettings(kind="classifier", data="folder:x", out=str(tmp_path), pretrained="musicnn-msd")
    assert architecture(fine, "multi-label") == "musicnn"


# --------------------------------------------------------------------------- windows per item


def test_an_epoch_draws_several_random_windows_of_each_item(tmp_path):
    spec = MelSpec(sample_rate=SR)
    paths = []
    for i, seconds in enumerate((4.0, 6.0, 1.0)):
        paths.append(tmp_path / f"a{i}.wav")
        sf.write(paths[-1], np.random.default_rng(i).normal(0, 0.1, int(seconds * SR)), SR)
    items = [Item(key=p.stem, path=p, labels=()) for p in paths]
    ready, targets, failed = it.usable(items, np.arange(3), sample_rate=SR, cache=tmp_path / "cache")
    assert not failed
    assert it.windows_held(ready, spec=spec, window_seconds=1.0, cache=tmp_path / "cache") == 4  # 4, 6, 1: median 4
    excerpts = it.Excerpts(
        ready, targets, spec=spec, window_seconds=1.0, cache=tmp_path / "cache", train=True, windows_per_item=3
    )
    assert len(excerpts) == 9
    assert [int(excerpts[i][1]) for i in range(9)] == [0, 1, 2] * 3
    with pytest.raises(ValueError, match="windows_per_item"):
        it.Excerpts(ready, targets, spec=spec, window_seconds=1.0, cache=tmp_path / "cache", windows_per_item=2)


# --------------------------------------------------------------------------- a run


@pytest.mark.slow
def test_a_run_records_what_was_chosen_for_its_size_and_its_notes(tmp_path):
    data = write_styles(tmp_path / "styles", 5, 4.0)
    said = []
    summary = train(
        TrainSettings(
            kind="classifier",
            data=f"folder:{data}",
            out=str(tmp_path / "run"),
            window=2.0,
            model_options={"channels": [4, 8], "hidden": 8},
            epochs=2,
            batch_size=4,
            loader_workers=0,
            cache=str(tmp_path / "cache"),
        ),
        say=said.append,
    )
    assert summary["kind"] == "classifier" and summary["task"] == "single-label"
    assert summary["chosen"] == {"for_training_items": 9, "windows_per_item": 2, "patience": 25, "lr": 1e-3}
    settings = summary["settings"]
    assert (settings["epochs"], settings["windows_per_item"], settings["patience"]) == (2, 2, 25)
    assert "chosen for 9 training items: windows_per_item 2, patience 25, lr 0.001 (set them to override)" in said
    assert len(summary["notes"]) <= 1 and summary["epochs_run"] == 2  # how the run went, at most one line
    _, config = checkpoint.load(tmp_path / "run")
    assert config["architecture"] == "crnn" and config["task"] == "single-label"


def test_a_classifier_needs_labels(tmp_path):
    (tmp_path / "music").mkdir()
    for i in range(3):
        sf.write(tmp_path / "music" / f"t{i}.wav", np.random.default_rng(i).normal(0, 0.1, SR * 2), SR)
    s = TrainSettings(kind="classifier", data=f"folder:{tmp_path / 'music'}", out=str(tmp_path / "run"))
    with pytest.raises(UsageError, match="has no labels: a classifier"):
        train(s, say=quiet)
