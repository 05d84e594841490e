"""Train each architecture for real on labelled music made here, and score it on held-out songs.

For the issue "Learn from my data" (item 6). From the Debian music of benchmarks/README.md it
makes, under ``--work`` (default ``bench-work/``, git-ignored), in ``train/<mode>/data/``:

- ``genre/``: a ``folder:`` dataset, ``orchestral/<track>/<track>-NN.wav`` (Wesnoth) and
  ``rock/<pack>-<song>/<pack>-<song>-NN.wav`` (Fretsonfire ``song.ogg``): 30 s excerpts side by
  side (excerpt NN starts at NN x 30 s), 16 kHz mono. A song's excerpts share a sub-folder, so
  the split (80/10/10 by song, stratified by genre) never puts one song on both sides;
- ``mtat/``: the MagnaTagATune layout, ``annotations_final.csv`` (TAB-separated, quoted like the
  release: ``clip_id``, tags ``orchestral rock guitar isolated`` as 0/1, ``mp3_path``) and
  ``mp3/{w,f}/<song>-<start>-<end>.mp3`` (16 kHz mono MP3 at 32 kbit/s, as MTAT). The tags are facts of the
  sources, not of listening: ``orchestral`` = a Wesnoth track, ``rock`` = a Fretsonfire song mix,
  ``guitar`` = a Fretsonfire mix or its guitar stem, ``isolated`` = the guitar stem alone. Stem
  clips are cut at 15 s + NN x 30 s, so that their names (whose clip-time suffix the reader strips
  to find the song) differ from the mix clips' while the song part is the same: mix and stem of
  one song are one song for the split. That split is not stratified: its seed is the first from 0
  whose valid and test splits each hold a Fretsonfire song (said in the report).

Wesnoth tracks give at most ``--excerpts`` excerpts each (evenly spread over the track; tracks
shorter than 30 s give none), the rock songs all of theirs. Then, through the public
``tuneseek.train.run.train(TrainSettings(...))``, it trains:

- ``fcn``: FCN tagger (3.7 s windows, the issue's short variant) on ``mtat:``;
- ``short-chunk-res``: short-chunk CNN + res tagger (3.69 s chunks) on ``mtat:``;
- ``crnn``: CNN-RNN genre classifier (30 s windows, single-label) on ``folder:genre``;
- ``resnet18``: ResNet-18 triplet embedding on the genre folder's audio without its labels (the
  triplet trainer reads no labels; the folder gives it songs as groups, so a distant patch is
  always from another song and the held-out songs stay unseen);

and scores each on the held-out test split: ``evaluate_run`` for the taggers and the classifier,
``evaluate_embeddings(run, "folder:<genre>")`` for the embedding, with an untrained ResNet-18 of
the same shape scored the same way as its baseline. The audio is decoded into the cache
(``train/cache``) before training, timed apart, so that a training's wall time is training:
epochs with their validation passes, and the export of the best epoch.

    python benchmarks/train.py [--quick] [--models fcn,short-chunk-res,crnn,resnet18]
                               [--threads 1] [--loader-workers 1] [--excerpts N] [--epochs N] [--device cpu]

Prints Markdown (the command, the machine, the data, one row per model with its held-out
metrics, epochs, wall time, throughput and parameters, then each model's settings) and writes
it to ``WORK/train/report-<mode>.md``; per model, the raw figures go to
``WORK/train/<mode>/results/<model>.json``. The datasets are kept and reused while their
parameters are the same; the runs are made afresh every time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from machine_load import cpu_busy_seconds, wait_quiet
from tuneseek import audio
from tuneseek.data.datasets import SPLITS, open_dataset

REPO = Path(__file__).resolve().parent.parent
WESNOTH = Path("/usr/share/games/wesnoth/1.16/data/core/music")
FOF = Path("/usr/share/games/fretsonfire/data/songs")
SR = 16000  # the datasets' audio: 16 kHz mono, as MagnaTagATune
EXCERPT = 30  # seconds
STEM_OFFSET = 15  # seconds: where the guitar stem's clip grid starts (see the module docstring)
TAGS = ("orchestral", "rock", "guitar", "isolated")
MP3_LEVEL = 0.85  # libsndfile's CBR level for 32 kbit/s at 16 kHz mono, MagnaTagATune's rate
SILENT_PEAK = 1e-3  # an excerpt whose peak is below this is silent and left out


@dataclass
class Plan:
    """One model to train: what, on which dataset, how (the TrainSettings that differ from the defaults)."""

    name: str
    kind: str  # tagger | genre | triplet
    arch: str
    data: str  # "mtat" | "genre"
    window: float | None
    model_options: dict = field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 16
    patience: int = 4
    lr: float = 1e-3


# Sized for about 40 minutes in all on 2 shared cores with one torch thread (see --threads): narrow
# networks, 10-20 epochs. Every model sees one random window per training item per epoch.
PLANS = {
    "full": [
        Plan("fcn", "tagger", "fcn", "mtat", 3.7, {"width": 0.25}, epochs=20, patience=6),
        Plan("short-chunk-res", "tagger", "short-chunk-res", "mtat", None, {"channels": 32}, epochs=20, patience=6),
        Plan("crnn", "genre", "crnn", "genre", 30.0, {}, epochs=10, patience=4),
        Plan("resnet18", "triplet", "resnet18", "genre", 3.7, {"width": 0.25}, epochs=15, patience=5),
    ],
    "quick": [
        Plan("fcn", "tagger", "fcn", "mtat", 3.7, {"width": 0.125}, epochs=2),
        Plan("short-chunk-res", "tagger", "short-chunk-res", "mtat", None, {"channels": 16}, epochs=1),
        Plan("crnn", "genre", "crnn", "genre", 30.0, {"channels": [16, 32], "hidden": 32}, epochs=1),
        Plan("resnet18", "triplet", "resnet18", "genre", 3.7, {"width": 0.125}, epochs=1),
    ],
}
MODE_DATA = {"full": {"excerpts": 4, "rock_excerpts": None}, "quick": {"excerpts": 1, "rock_excerpts": 2}}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- load on the machine


def own_cpu_seconds() -> float:
    """This process's CPU time and that of its finished children (loader workers, decoders)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        total += r.ru_utime + r.ru_stime
    return total


class Timed:
    """Wall time of a block, with the CPU cores that this process and others used meanwhile."""

    def __enter__(self):
        self.t0, self.b0, self.c0 = time.perf_counter(), cpu_busy_seconds(), own_cpu_seconds()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        own = own_cpu_seconds() - self.c0
        self.own_cores = own / self.seconds
        self.others_cores = max(0.0, (cpu_busy_seconds() - self.b0) - own) / self.seconds
        return False


def peak_rss_mb() -> dict:
    """Peak resident memory of this process and of its largest finished child, in MB."""
    return {
        "self": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "largest_child": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
    }


# ----------------------------------------------------------------------------- the datasets


def slug(name: str) -> str:
    return name.lower().replace(" ", "_")


def grid(n_samples: int, offset: int = 0) -> list[int]:
    """Excerpt indices NN of the 30 s excerpts that fit whole, starting at ``offset`` + NN x 30 s."""
    return list(range(max(0, (n_samples - offset * SR) // (EXCERPT * SR))))


def spread(indices: list[int], cap: int | None) -> list[int]:
    """At most ``cap`` of ``indices``, evenly spread (all of them without a cap)."""
    if cap is None or len(indices) <= cap:
        return indices
    return sorted({indices[int(round(i))] for i in np.linspace(0, len(indices) - 1, cap)})


def cut(x: np.ndarray, nn: int, offset: int = 0) -> np.ndarray:
    start = (offset + nn * EXCERPT) * SR
    return x[start : start + EXCERPT * SR]


def sources() -> tuple[list[Path], list[tuple[str, Path, Path]]]:
    """The Wesnoth tracks, and per Fretsonfire song ``(pack-song, song.ogg, guitar.ogg)``."""
    wes = sorted(WESNOTH.glob("*.ogg"))
    rock = [
        (f"{song.parent.parent.name}-{slug(song.parent.name)}", song, song.parent / "guitar.ogg")
        for song in sorted(FOF.glob("*/*/song.ogg"))
    ]
    if len(wes) < 40 or len(rock) != 8 or not all(g.is_file() for _, _, g in rock):
        sys.exit(
            "the Debian music is missing: apt-get install wesnoth-1.16-music fretsonfire-songs-muldjord "
            "fretsonfire-songs-sectoid (see benchmarks/README.md)"
        )
    return wes, rock


def build_data(data: Path, excerpts: int, rock_excerpts: int | None) -> dict:
    """Make (or reuse) the genre folder and the MTAT-layout folder; returns their manifest."""
    params = {
        "sample_rate": SR,
        "excerpt_s": EXCERPT,
        "stem_offset_s": STEM_OFFSET,
        "excerpts": excerpts,
        "rock_excerpts": rock_excerpts,
        "tags": list(TAGS),
        "version": 1,
    }
    manifest_path = data / "manifest.json"
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("params") == params:
            log(f"datasets kept from an earlier run in {data}")
            return {**manifest, "kept": True}
    if data.exists():
        shutil.rmtree(data)
    genre, mtat = data / "genre", data / "mtat"
    wes, rock = sources()
    rows, skipped, seconds = [], [], {"orchestral": 0.0, "rock": 0.0, "guitar stem": 0.0}
    t0 = time.perf_counter()

    def put(x: np.ndarray, label: str, song: str, nn: int, mp3_dir: str, mp3_song: str, offset: int, tags: set) -> None:
        if np.abs(x).max() < SILENT_PEAK:
            skipped.append(f"{mp3_song} excerpt {nn} (silent)")
            return
        if label:
            out = genre / label / song / f"{song}-{nn:02d}.wav"
            out.parent.mkdir(parents=True, exist_ok=True)
            sf.write(out, x, SR, subtype="PCM_16")
        start = offset + nn * EXCERPT
        rel = f"{mp3_dir}/{mp3_song}-{start}-{start + EXCERPT}.mp3"
        (mtat / "mp3" / mp3_dir).mkdir(parents=True, exist_ok=True)
        sf.write(mtat / "mp3" / rel, x, SR, format="MP3", bitrate_mode="CONSTANT", compression_level=MP3_LEVEL)
        rows.append((rel, tags))

    for path in wes:
        x = audio.load(path, SR)
        chosen = spread(grid(len(x)), excerpts)
        if not chosen:
            skipped.append(f"wesnoth {path.name} ({len(x) / SR:.1f} s: shorter than one excerpt)")
        for nn in chosen:
            put(cut(x, nn), "orchestral", slug(path.stem), nn, "w", f"wesnoth-{slug(path.stem)}", 0, {"orchestral"})
            seconds["orchestral"] += EXCERPT
    for name, song, stem in rock:
        x, g = audio.load(song, SR), audio.load(stem, SR)
        for nn in spread(grid(len(x)), rock_excerpts):
            put(cut(x, nn), "rock", name, nn, "f", f"fretsonfire-{name}", 0, {"rock", "guitar"})
            seconds["rock"] += EXCERPT
        for nn in spread(grid(len(g), STEM_OFFSET), rock_excerpts):
            put(cut(g, nn, STEM_OFFSET), "", name, nn, "f", f"fretsonfire-{name}", STEM_OFFSET, {"guitar", "isolated"})
            seconds["guitar stem"] += EXCERPT
    lines = ["\t".join(f'"{v}"' for v in ("clip_id", *TAGS, "mp3_path"))]
    for clip_id, (rel, tags) in enumerate(rows):
        lines.append("\t".join(f'"{v}"' for v in (clip_id, *(int(t in tags) for t in TAGS), rel)))
    (mtat / "annotations_final.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    manifest = {
        "params": params,
        "built_s": round(time.perf_counter() - t0, 1),
        "skipped": skipped,
        "minutes": {k: round(v / 60, 1) for k, v in seconds.items()},
        "bytes": {"genre": dir_bytes(genre), "mtat": dir_bytes(mtat)},
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    log(f"datasets made in {manifest['built_s']:.0f} s in {data} ({len(skipped)} excerpt(s) or track(s) left out)")
    return manifest


def dir_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def mtat_seed(spec: str) -> int:
    """The first split seed whose valid and test splits each hold a Fretsonfire song and a Wesnoth track."""
    for seed in range(100):
        counts = open_dataset(spec, seed=seed).summary()["splits"]
        if all(
            counts[s]["label_counts"]["rock"] and counts[s]["label_counts"]["orchestral"] for s in ("valid", "test")
        ):
            return seed
    sys.exit(f"no split seed below 100 puts a Fretsonfire song in both held-out splits of {spec}")


def describe_split(spec: str, **options) -> dict:
    s = open_dataset(spec, **options).summary()
    return {split: {k: s["splits"][split][k] for k in ("items", "groups", "label_counts")} for split in SPLITS}


# ----------------------------------------------------------------------------- training and scoring


def prepare_cache(specs: dict[str, str], rates: set[tuple[str, int]], cache: Path) -> list[dict]:
    """Decode every item of each (dataset, sample rate) into the cache, timed; what is cached already is skipped."""
    from tuneseek.train.items import prepare

    out = []
    for data, rate in sorted(rates):
        ds = open_dataset(specs[data])
        items = [item for split in SPLITS for item in ds.splits[split]]
        with Timed() as t:
            failed = prepare(items, sample_rate=rate, cache=cache, workers=2)
        out.append(
            {
                "data": data,
                "sample_rate": rate,
                "items": len(items),
                "seconds": round(t.seconds, 1),
                "failed": [f"{item.path}: {reason}" for item, reason in failed],
            }
        )
        log(f"cache: {data} at {rate} Hz, {len(items)} items, {t.seconds:.1f} s")
    return out


def train_one(plan: Plan, spec: str, data_options: dict, out: Path, cache: Path, args) -> dict:
    """Train ``plan`` afresh into ``out``; returns the training summary with timing and the settings."""
    import torch

    from tuneseek.train.run import TrainSettings, train

    if out.exists():
        shutil.rmtree(out)
    settings = TrainSettings(
        kind=plan.kind,
        data=spec,
        out=str(out),
        arch=plan.arch,
        window=plan.window,
        model_options=dict(plan.model_options),
        data_options=dict(data_options),
        epochs=args.epochs or plan.epochs,
        batch_size=plan.batch_size,
        lr=plan.lr,
        patience=plan.patience,
        seed=args.seed,
        loader_workers=args.loader_workers,
        device=args.device,
        cache=str(cache),
    )
    torch.set_num_threads(args.threads)
    waited = wait_quiet(args.wait)
    with Timed() as t:
        summary = train(settings, say=lambda line: log("  | " + line.replace("\n", "\n  | ")))
    return {
        "summary": summary,
        "settings": asdict(settings),
        "train_s": round(t.seconds, 1),
        "own_cores": round(t.own_cores, 2),
        "others_cores": round(t.others_cores, 2),
        "waited_s": round(waited, 1),
        "torch_threads": args.threads,
        "peak_rss_mb": peak_rss_mb(),
    }


def parameters(run: Path) -> int:
    from tuneseek.models import checkpoint

    model, _ = checkpoint.load(run)
    return int(sum(p.numel() for p in model.parameters()))


def untrained_embedding(trained: Path, out: Path, seed: int) -> Path:
    """A checkpoint of the trained run's architecture with its initial (random, seeded) weights: the
    baseline an embedding must beat."""
    import torch

    from tuneseek.models import checkpoint, registry

    _, config = checkpoint.load(trained)
    torch.manual_seed(seed)
    model = registry.build(config)
    if out.exists():
        shutil.rmtree(out)
    return checkpoint.save(
        out,
        model.eval(),
        extra={
            "task": config["task"],
            "labels": [],
            "data": config["data"],
            "training": {"epochs_run": 0, "note": "untrained baseline"},
        },
    )


def score(plan: Plan, run: Path, genre_spec: str, cache: Path, seed: int) -> dict:
    from tuneseek.evaluate.embeddings import evaluate_embeddings
    from tuneseek.evaluate.trained import evaluate_run

    quiet = lambda line: log("  | " + line)  # noqa: E731
    with Timed() as t:
        if plan.kind == "triplet":
            result = evaluate_embeddings(run, genre_spec, cache=str(cache), say=quiet)
        else:
            result = evaluate_run(run, split="test", cache=str(cache), say=quiet)
    out = {"metrics": result, "eval_s": round(t.seconds, 1)}
    if plan.kind == "triplet":
        base = untrained_embedding(run, run.parent / f"{run.name}-untrained", seed)
        out["untrained"] = evaluate_embeddings(base, genre_spec, cache=str(cache), say=quiet)
    return out


# ----------------------------------------------------------------------------- the report


def fmt(v, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def chance_tagging(m: dict) -> float:
    """PR-AUC of a random scorer: the mean share of positives over the scored tags."""
    return float(np.mean([t["positives"] / m["items"] for t in m["per_tag"].values()]))


def headline(r: dict) -> tuple[str, str]:
    """The held-out metrics of a result, and the chance (or baseline) figures to read them against."""
    m = r["metrics"]
    if r["kind"] == "tagger":
        per = ", ".join(f"{k} {v['roc_auc']:.2f}" for k, v in m["per_tag"].items())
        return (
            f"ROC-AUC **{m['roc_auc']:.3f}**, PR-AUC **{m['pr_auc']:.3f}** ({m['items']} clips; ROC-AUC per tag: {per})",
            f"ROC-AUC 0.5, PR-AUC {chance_tagging(m):.3f}",
        )
    if r["kind"] == "genre":
        rec = ", ".join(f"{k} {v:.2f}" for k, v in m["per_class_recall"].items())
        counts = np.array(m["confusion"]).sum(axis=1)
        return (
            f"accuracy **{m['accuracy']:.3f}**, balanced **{m['balanced_accuracy']:.3f}** ({m['items']} excerpts; "
            f"recall {rec})",
            f"majority class {counts.max() / counts.sum():.3f}, balanced 0.5",
        )
    lp, km, knn = m["linear_probe"], m["kmeans"], m["knn"]
    u = r["untrained"]
    return (
        f"probe F1 **{lp['macro_f1']:.3f}** (acc {lp['accuracy']:.3f}), k-means purity {km['purity']:.3f} / "
        f"NMI {km['nmi']:.3f}, kNN P@{knn['k']} {fmt(knn['precision_at_k'])} ({lp['test_items']} test excerpts)",
        f"majority {lp['majority_class_accuracy']:.3f}, kNN chance {fmt(knn['chance'])}; untrained net: probe F1 "
        f"{u['linear_probe']['macro_f1']:.3f}, purity {u['kmeans']['purity']:.3f}, NMI {u['kmeans']['nmi']:.3f}, "
        f"P@{u['knn']['k']} {fmt(u['knn']['precision_at_k'])}",
    )


def throughput(r: dict) -> tuple[float, str]:
    s = r["summary"]
    train_items = s["dataset"]["splits"]["train"]["items"] - len(s["left_out"])
    seen = train_items * s["epochs_run"]
    per_s = seen / r["train_s"]
    if r["kind"] == "triplet":
        return per_s, f"{per_s:.2f} triplets/s = {3 * per_s:.1f} windows/s"
    return per_s, f"{per_s:.2f}"


def report(results: list[dict], context: dict) -> str:
    out = []
    w = out.append
    w(
        f"Command: `{context['command']}` ({context['mode']} run, {context['total_min']:.1f} min in all), "
        f"code `{context['git']}`, {context['date']}.\n"
    )
    gpu = (
        f"Trained on `{context['device']}` ({context['gpu']})."
        if context["device"] == "cuda"
        else f"Trained on the CPU; a GPU ({context['gpu']}) is present: --device cuda trains on it."
        if context["gpu"]
        else "Trained on the CPU; no GPU on this machine, so the GPU rows were not measured."
    )
    w(
        f"Machine: {context['machine']}. **{gpu}** "
        f"torch {context['torch']} on {context['threads']} thread(s), {context['loader_workers']} loader worker(s); "
        "other processes' CPU use during each training is in the table (the machine is shared).\n"
    )
    m = context["manifest"]
    made = "by an earlier run, kept" if m.get("kept") else "now"
    w(
        f"Data, made in {m['built_s']:.0f} s {made} ({m['minutes']['orchestral']:.0f} min orchestral, {m['minutes']['rock']:.0f} min "
        f"rock mix, {m['minutes']['guitar stem']:.0f} min guitar stem; 30 s excerpts, at most {m['params']['excerpts']} "
        "per Wesnoth track):\n"
    )
    w("| dataset | split seed | train | valid | test |\n| --- | --- | --- | --- | --- |")
    for name, d in context["datasets"].items():
        cells = [
            ", ".join(f"{k} {v}" for k, v in d["splits"][s]["label_counts"].items())
            + f" ({d['splits'][s]['items']} items, {d['splits'][s]['groups']} songs)"
            for s in SPLITS
        ]
        w(f"| `{name}` | {d['seed']} | " + " | ".join(cells) + " |")
    w("\nLeft out when making the data: " + ("; ".join(m["skipped"]) or "nothing") + ".")
    cache = ", ".join(f"{c['data']} at {c['sample_rate'] // 1000} kHz {c['seconds']:.0f} s" for c in context["cache"])
    w(f"Decoding into the cache (2 processes, before training, not in the training times): {cache}.\n")
    w(
        "| model | task, data | params | epochs run (best) | training wall | throughput, clips/s | "
        "held-out test metrics | chance / baseline | others' CPU |"
    )
    w("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        s = r["summary"]
        metrics, chance = headline(r)
        w(
            f"| {r['name']} | {r['kind']}, {r['data']} | {r['params'] / 1e6:.2f} M | {s['epochs_run']} ({s['best_epoch']}) | "
            f"{duration(r['train_s'])} | {throughput(r)[1]} | {metrics} | {chance} | {r['others_cores']:.2f} cores |"
        )
    w(
        "\nThroughput = training items x epochs run / training wall time, which includes each epoch's validation "
        "pass and the export of the best epoch (a triplet is 3 windows). Chance: a random scorer's ROC-AUC and PR-AUC "
        "(the mean share of positives per tag), the majority class's share of the test items; for the embedding also "
        "the same network untrained (seeded random weights) scored the same way."
    )
    if context["datasets"]["mtat:…/mtat"]["seed"]:
        w(
            f"The MTAT-layout split is by song and not stratified: seed {context['datasets']['mtat:…/mtat']['seed']} is "
            "the first whose valid and test splits each hold a Fretsonfire song."
        )
    w(
        "\nSettings (`TrainSettings` fields that differ from the defaults; all runs: seed "
        f'{context["seed"]}, AdamW, augmentation on, `device="{context["device"]}"`):\n'
    )
    for r in results:
        st = r["settings"]
        opts = ", ".join(f"{k}={v}" for k, v in st["model_options"].items()) or "defaults"
        data_opts = f", data options {st['data_options']}" if st["data_options"] else ""
        w(
            f"- **{r['name']}**: `{st['kind']}`, arch `{st['arch']}`, window {fmt(r['window'], 2)} s, model options "
            f"{opts}, batch {st['batch_size']}, lr {st['lr']}, epochs ≤ {st['epochs']}, patience {st['patience']}"
            f"{data_opts}; best val {s_monitor(r)}; evaluation {r['eval_s']:.0f} s; peak RSS {r['peak_rss_mb']['self']} MB "
            f"(largest child {r['peak_rss_mb']['largest_child']} MB)"
        )
    return "\n".join(out) + "\n"


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def s_monitor(r: dict) -> str:
    s = r["summary"]
    return f"{s['monitor']} {fmt(s['best'])}"


# ----------------------------------------------------------------------------- main


def git_rev() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        return rev + (" + uncommitted changes in src/" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.1f} GiB RAM, Linux {platform.release()}, Python {platform.python_version()}"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Plans (model: epochs, options), full / quick:\n"
        + "\n".join(
            f"  {a.name}: {a.epochs} {a.model_options} / {b.epochs} {b.model_options}"
            for a, b in zip(PLANS["full"], PLANS["quick"])
        ),
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 excerpt per Wesnoth track, 2 per rock song, narrower networks, 1-2 epochs (a few minutes)",
    )
    ap.add_argument("--work", default=str(REPO / "bench-work"), help="scratch folder (default bench-work/)")
    ap.add_argument(
        "--models",
        default=",".join(p.name for p in PLANS["full"]),
        help="comma-separated subset of fcn,short-chunk-res,crnn,resnet18 (default all)",
    )
    ap.add_argument("--excerpts", type=int, help="30 s excerpts per Wesnoth track at most (default 4, quick 1)")
    ap.add_argument("--epochs", type=int, help="epochs for every model, instead of each plan's")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on the shared 2-core machine, 2 threads trained 2-4x slower "
        "than 1 whenever another process held a core)",
    )
    ap.add_argument("--loader-workers", type=int, default=1, help="data-loading processes (default 1)")
    ap.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to train (default cpu)")
    ap.add_argument(
        "--wait",
        type=float,
        default=30.0,
        help="before each training, wait up to this many seconds for a quiet machine (default 30)",
    )
    args = ap.parse_args()
    mode = "quick" if args.quick else "full"
    plans = {p.name: p for p in PLANS[mode]}
    chosen = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in plans]
    if unknown:
        ap.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(plans)}")
    command = "python benchmarks/train.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    print(f"$ {command.strip()}\n", flush=True)
    started = time.perf_counter()

    root = Path(args.work).expanduser().resolve() / "train"
    home = root / mode
    cache = root / "cache"
    (home / "results").mkdir(parents=True, exist_ok=True)
    data_params = dict(MODE_DATA[mode])
    if args.excerpts is not None:
        data_params["excerpts"] = args.excerpts
    manifest = build_data(home / "data", **data_params)
    specs = {"genre": f"folder:{home / 'data' / 'genre'}", "mtat": f"mtat:{home / 'data' / 'mtat'}"}
    seeds = {"genre": 0, "mtat": mtat_seed(specs["mtat"])}
    datasets = {
        specs[k].split(":")[0] + ":…/" + k: {"seed": seeds[k], "splits": describe_split(specs[k], seed=seeds[k])}
        for k in ("genre", "mtat")
    }
    for name, d in datasets.items():
        log(
            f"{name} (split seed {d['seed']}): "
            + "; ".join(f"{s} {d['splits'][s]['items']} items / {d['splits'][s]['groups']} songs" for s in SPLITS)
        )

    from tuneseek.models import registry

    rates = {
        (
            plans[n].data,
            registry.create(plans[n].arch, **({} if plans[n].kind == "triplet" else {"n_outputs": 2})).spec.sample_rate,
        )
        for n in chosen
    }
    cache_times = prepare_cache(specs, rates, cache)

    results = []
    for name in chosen:
        plan = plans[name]
        log(f"\n== {name}: train {plan.kind} ({plan.arch}) on {plan.data}")
        data_options = {"seed": seeds["mtat"]} if plan.data == "mtat" and seeds["mtat"] else {}
        run = home / "runs" / name
        r = train_one(plan, specs[plan.data], data_options, run, cache, args)
        r.update(
            name=name,
            kind=plan.kind,
            data=plan.data,
            window=r["summary"]["settings"]["window"]
            or registry.create(plan.arch, **({} if plan.kind == "triplet" else {"n_outputs": 2})).window_seconds,
            params=parameters(run),
        )
        log(
            f"  trained: {r['summary']['epochs_run']} epoch(s) in {r['train_s']:.0f} s "
            f"(others used {r['others_cores']:.2f} cores); scoring the test split"
        )
        r.update(score(plan, run, specs["genre"], cache, args.seed))
        log(f"  {headline(r)[0]}")
        (home / "results" / f"{name}.json").write_text(json.dumps(r, indent=2, default=str) + "\n")
        results.append(r)

    import torch

    context = {
        "command": command.strip(),
        "mode": mode,
        "git": git_rev(),
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "torch": torch.__version__,
        "threads": args.threads,
        "loader_workers": args.loader_workers,
        "seed": args.seed,
        "manifest": manifest,
        "device": args.device,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "",
        "datasets": datasets,
        "cache": cache_times,
        "total_min": (time.perf_counter() - started) / 60,
    }
    text = report(results, context)
    (root / f"report-{mode}.md").write_text(text)
    print(text)
    log(f"report written to {root / f'report-{mode}.md'}")


if __name__ == "__main__":
    main()
