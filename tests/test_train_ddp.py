"""Training on more than one process (DDP through Lightning, gloo on the CPU) and the checks before it.

The two-process run is the command line's (``tuneseek train ... --devices 2 --strategy ddp``: the
first process starts the second by running the same command again), on a tiny generated
dataset, beside a one-process run of the same settings. It checks that the run folder is written
once, by the first process; that the validation metrics are those of the whole valid split
(recomputed here, in one process, from the exported model: exact); and that the two runs train
alike, within a tolerance:

The two runs start from the same weights and take the same steps on the same items (a global
batch of 8: 4 per process; the one-process run draws the DDP sampler's order), with no
augmentation, no dropout and windows as long as the files, so their inputs are identical. What
differs is BatchNorm: each process normalises its 4 items by their own statistics, where one
process normalises 8 (SyncBatchNorm, which would make the runs equal, does not run on CPUs), and
the running statistics kept for validation are the first process's. Measured on the 2-core
machine: the training loss per epoch within 0.02 of the one-process run (which, with seeds 0, 1
and 2, ends at 0.53, 0.97 and 0.49), the validation loss within 0.1, and the best balanced
accuracy one validation item apart (1/6). The tolerances: 0.05 on the training loss, one item on the
balanced accuracy.
"""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from training_data import write_styles
from tuneseek.cli import main
from tuneseek.data.datasets import open_dataset
from tuneseek.errors import UsageError
from tuneseek.models import checkpoint
from tuneseek.train import items as it
from tuneseek.train import parallel
from tuneseek.train.run import TrainSettings, epoch_metrics, train

#: Tiny, and without dropout: a one-process and a two-process run then differ only as the module docstring says
TINY_CRNN = {"channels": [4, 8], "hidden": 8, "dropout": 0, "conv_dropout": 0}
EPOCHS = 4
BATCH = 8  # per step: 4 per process with two
LR = 0.01


@pytest.fixture(scope="module")
def styles(tmp_path_factory):
    """Three classes told apart by spectral tilt, 16 files of 1.5 s each: 36 train, 6 valid, 6 test items."""
    return write_styles(tmp_path_factory.mktemp("styles"), 16, 1.5)


def quiet(_msg):
    pass


def command(data, out, cache, *extra) -> list[str]:
    return [
        "train",
        "genre",
        "--data",
        f"folder:{data}",
        "--out",
        str(out),
        "--window",
        "1.5",
        "--epochs",
        str(EPOCHS),
        "--batch-size",
        str(BATCH),
        "--lr",
        str(LR),
        "--loader-workers",
        "0",
        "--no-augment",
        "--patience",
        str(EPOCHS),
        *[arg for key, value in TINY_CRNN.items() for arg in ("--model-option", f"{key}={json.dumps(value)}")],
        "--cache",
        str(cache),
        *extra,
    ]


def validation_on_one_process(run, data, cache) -> tuple[float, float]:
    """``(val_loss, val_balanced_accuracy)`` of the exported model over the whole valid split, computed here."""
    from tuneseek.train.metrics import classification

    model, config = checkpoint.load(run)
    ds = open_dataset(f"folder:{data}")
    valid = it.Excerpts(
        ds.splits["valid"], ds.targets("valid"), spec=model.spec, window_seconds=config["window_seconds"], cache=cache
    )
    x = torch.stack([valid[i][0] for i in range(len(valid))])
    y = torch.as_tensor(ds.targets("valid")).long()
    model.eval()
    with torch.no_grad():
        logits = model(x)
    loss = float(F.cross_entropy(logits, y, label_smoothing=0.1))
    return loss, classification(y.numpy(), logits.numpy(), labels=config["labels"])["balanced_accuracy"]


@pytest.mark.slow
def test_two_processes_on_the_cpu_train_as_one_and_write_the_run_once(styles, tmp_path):
    cache = tmp_path / "cache"
    one = train(
        TrainSettings(
            kind="genre",
            data=f"folder:{styles}",
            out=str(tmp_path / "one"),
            window=1.5,
            model_options=dict(TINY_CRNN),
            epochs=EPOCHS,
            batch_size=BATCH,
            lr=LR,
            loader_workers=0,
            augment=False,
            patience=EPOCHS,
            cache=str(cache),
        ),
        say=quiet,
    )

    run = tmp_path / "two"
    done = subprocess.run(
        [sys.executable, "-m", "tuneseek.cli", *command(styles, run, cache, "--devices", "2", "--strategy", "ddp")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    # the second process says nothing: one description of the data, one summary line
    assert sum(line.startswith("folder dataset at") for line in lines) == 1, done.stdout
    assert sum(line.startswith("trained ") for line in lines) == 1, done.stdout
    assert "Traceback" not in done.stderr, done.stderr[-3000:]

    summary = json.loads((run / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["settings"]["strategy"] == "ddp"
    assert summary["epochs_run"] == EPOCHS == one["epochs_run"]
    assert sorted(p.name for p in (run / "logs").iterdir()) == ["run-1"]  # one log, by the first process
    assert sorted(p.name for p in (run / "lightning").iterdir()) == ["best.ckpt", "last.ckpt"]

    # Validation covered the whole valid split, each item once: what one process computes from the model
    per_epoch = epoch_metrics(run)
    best = summary["best_epoch"] - 1
    loss, balanced = validation_on_one_process(run, styles, cache)
    assert per_epoch["val_loss"][best] == pytest.approx(loss, abs=1e-5)
    assert summary["best"] == pytest.approx(balanced, abs=1e-9)

    # The same training as one process, but for BatchNorm's statistics (see the tolerance above)
    ones = epoch_metrics(tmp_path / "one")
    for epoch in range(EPOCHS):
        assert per_epoch["train_loss"][epoch] == pytest.approx(ones["train_loss"][epoch], abs=0.05)
    assert abs(summary["best"] - one["best"]) <= 1 / 6 + 1e-6


def test_the_layout_is_checked_before_anything_runs():
    assert parallel.layout("cpu", devices=2, batch_size=16).trainer_options() == {
        "accelerator": "cpu",
        "devices": 2,
        "num_nodes": 1,
        "strategy": "ddp",
    }
    assert parallel.layout("cpu", devices=2, batch_size=16).batch_size == 8
    assert parallel.layout("cpu", devices=1, batch_size=16).strategy == "auto"
    if torch.cuda.is_available():
        assert parallel.layout("cuda", devices=1).accelerator == "gpu"
    with pytest.raises(UsageError, match="choose a multiple of 3"):
        parallel.layout("cpu", devices=3, batch_size=16)
    with pytest.raises(UsageError, match="unknown strategy 'fsdp'"):
        parallel.layout("cpu", devices=2, strategy="fsdp", batch_size=2)
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="torch sees no CUDA GPU"):
            parallel.layout("gpu", devices=1)


def test_under_torchrun_the_processes_asked_for_are_those_it_started(monkeypatch):
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "test")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("WORLD_SIZE", "4")
    with pytest.raises(UsageError, match="torchrun started 4 process"):
        parallel.layout("cpu", devices=1)
    assert parallel.layout("cpu", devices=2, num_nodes=2, batch_size=8).world_size == 4


def test_the_rank_comes_from_the_launchers_environment(monkeypatch):
    for name in parallel.RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert parallel.launched_rank() == 0
    monkeypatch.setenv("NODE_RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert parallel.launched_rank() == 1
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("NODE_RANK", "1")
    assert parallel.launched_rank() == 1
    assert parallel.rank_seed(7, 0) == 7 and parallel.rank_seed(7, 1) != parallel.rank_seed(7, 2)


def test_what_cannot_work_is_one_line_on_the_command_line(tmp_path, capsys, monkeypatch):
    base = ["train", "genre", "--data", f"folder:{tmp_path}", "--out", str(tmp_path / "run")]
    assert main([*base, "--devices", "2", "--batch-size", "5"]) == 1
    assert capsys.readouterr().err.strip().endswith("choose a multiple of 2")
    if not torch.cuda.is_available():
        assert main([*base, "--accelerator", "gpu"]) == 1
        err = capsys.readouterr().err
        assert "torch sees no CUDA GPU" in err and len(err.strip().splitlines()) == 1
    assert main(["train", "text-audio", "--data", f"folder:{tmp_path}", "--out", str(tmp_path / "t"), "--devices", "2"])
    err = capsys.readouterr().err
    assert "trains on one device, in one process" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists() and not (tmp_path / "t").exists()

    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "lightning" else real(name, *a))
    assert main(base) == 1
    err = capsys.readouterr().err
    assert "PyTorch Lightning is missing" in err and "pip install" in err and len(err.strip().splitlines()) == 1


def test_the_validation_rows_of_every_process_are_counted_once_in_order():
    index = torch.tensor([0, 2, 4, 1, 3, 0])  # two processes' rows; the sampler repeated item 0 to even them out
    keep = parallel.unique_rows(index)
    assert index[keep].tolist() == [0, 1, 2, 3, 4] and keep.tolist() == [0, 3, 1, 4, 2]
    assert np.array_equal(parallel.Indexed([("a", 1), ("b", 2)])[1][2].numpy(), np.array(1))
