#!/usr/bin/env python3
"""The cross-attention matcher (issue 15, item 6): does it learn, how fast, and against the contrastive fingerprint.

    nice -n 10 python benchmarks/cross_matcher.py                    # data (once), training, baselines, cost
    nice -n 10 python benchmarks/cross_matcher.py --budget 60 --fp-budget 60   # a quick look
    nice -n 10 python benchmarks/cross_matcher.py --evaluate test   # the saved models on the test split's pairs

**Data** (real music the project may use, none of the identification benchmark's library): the
Debian game music linked under ``bench-work/fpdata/music/{asc,hyperrogue,planetblupi,singularity}``,
split *by track*: train = planetblupi + hyperrogue + 9 singularity tracks; valid = 2 asc + 2
singularity; test = 1 asc + 2 singularity. ``tuneseek.data.querysets.make_queries`` cuts 4 s
samples from each split's tracks, once per degradation (pink noise at 5 dB SNR, room reverb, a
phone in a room, pink noise at 10 dB then MP3 at 32 kbit/s) into ``bench-work/fpdata/xm-stage/``,
and the four are merged (symlinks) into one origin/sample layout, ``bench-work/fpdata/xm/{train,valid,test}/``.
Files that do not decode are skipped by ``make_queries`` (listed in each stage's ``queries.json``).

**Pairs**: a 2 s window of a sample, and a 3 s window of an origin. Positive: the origin window
holds the sample's true span, starting 0..1 s before it (a continuous random offset: the
matcher's "where"). Hard negative: a window of the same track that does not overlap the span.
Easy negative: a window of another track. Training draws 1/2 positives, 1/4 hard, 1/4 easy, afresh
every step (a random 2 s of each 4 s sample); validation is one fixed set from the valid split
(seed 0): per sample one positive, one hard and one easy negative.

**Matcher**: :class:`tuneseek.models.cross_matcher.CrossAttentionMatcher`, AdamW (lr 5e-4, 100
warm-up steps, weight decay 0.01), batch 32, loss = binary cross-entropy of the match logit +
0.5 x the alignment cross-entropy on positives; trained for ``--budget`` seconds of one core's CPU
time (``torch.set_num_threads(1)``), validated every ``--epoch-steps`` steps (an "epoch").

**Baselines on the same pairs**, each scoring a pair as: the sample's 1 s segments at hop 0.5 s
(3), each matched to its most similar 1 s segment of the origin window at hop 0.1 s (21: a
5x denser grid than an index would keep, the fingerprint's best case), the cosines averaged:

* ``fingerprint (trained here)``: :class:`~tuneseek.models.fingerprint_net.FingerprintNet`
  trained by NT-Xent (temperature 0.05, batch 64 pairs of an origin's 1 s segment and the
  sample's same second, +-50 ms jitter) on the same train split for ``--fp-budget`` CPU seconds:
  the contrastive fingerprint on the same data and budget;
* ``fingerprint (run)``: a trained run, if one is found under ``bench-work/fpdata/runs/`` or
  ``runs/`` (``model.safetensors`` + ``config.json`` of architecture ``fingerprint``);
* ``fingerprint (untrained)``: the same network at its random initialisation;
* ``log-mel cosine``: the fingerprint's level-free log-mel (128 bands x 32 frames), centred;
* ``..., one offset`` (``--evaluate`` only): the sample's segments must agree on one offset into the
  origin window (the best offset's mean cosine), as landmark voting and the matcher's alignment readout do.

**Cost**: seconds per pair of the matcher (whole, and with the origin side's encoding cached)
against seconds per 1 s segment vector of the fingerprint, turned into the time to search one
2 s query against a library of N hours.

Writes ``bench-work/fpdata/cross_matcher.json`` (and the two trained models beside it, ``cross_matcher-model.pt``
and ``cross_matcher-fingerprint.pt``) and prints markdown tables; ``--evaluate SPLIT`` scores those saved
models and the baselines on SPLIT's pairs, overall and per degradation (``cross_matcher-SPLIT.json``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tuneseek import audio
from tuneseek.data.querysets import make_queries, read_queryset
from tuneseek.models.cross_matcher import TOKEN_HOP, CrossAttentionMatcher
from tuneseek.models.fingerprint_net import FingerprintNet

SR = 8000
ORIGIN_S, SAMPLE_S, SAMPLE_FILE_S = 3.0, 2.0, 4.0
NO, NS = int(ORIGIN_S * SR), int(SAMPLE_S * SR)
SPECS = ("noise:5db", "reverb", "phone", "noise:10db,mp3:32k")
#: ``--hard``: conditions neither model was trained on, for the held-out splits only.
HARD_SPECS = ("noise:0db", "noise:-5db", "noise:0db,mp3:32k", "pitch:1")
MUSIC = Path("bench-work/fpdata/music")


def split_tracks() -> dict[str, list[Path]]:
    sing = sorted((MUSIC / "singularity").iterdir())
    asc = sorted((MUSIC / "asc").iterdir())
    return {
        "train": sorted((MUSIC / "planetblupi").iterdir()) + sorted((MUSIC / "hyperrogue").iterdir()) + sing[:9],
        "valid": asc[:2] + sing[9:11],
        "test": asc[2:] + sing[11:],
    }


def make_layout(root: Path, per_track: dict[str, int], specs=SPECS, name: str = "xm") -> Path:
    """Stage one ``make_queries`` run per (degradation, split in ``per_track``); merge them into ``root/NAME``."""
    stage, out = root / f"{name}-stage", root / name
    for si, spec in enumerate(specs):
        for split, tracks in split_tracks().items():
            if split not in per_track:
                continue
            name = spec.replace(":", "").replace(",", "_")
            t = time.time()
            qs = make_queries(
                tracks,
                stage / name,
                length=SAMPLE_FILE_S,
                degradations=spec,
                per_track=per_track[split],
                seed=si,
                split=split,
            )
            skipped = "; ".join(f"{Path(p).name}: {r}" for p, r in qs.skipped)
            print(
                f"  {name}/{split}: {len(qs.samples)} samples ({time.time() - t:.0f} s){' skipped ' + skipped if skipped else ''}"
            )
            for o in qs.origins:
                dst = out / split / "origin" / o.label / o.path.name
                if not dst.exists():
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    os.symlink(os.path.realpath(o.path), dst)
            for s in qs.samples:
                dst = out / split / "sample" / s.label / s.path.name
                if not dst.exists():  # two stages cutting the same span: keep the first
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    os.symlink(os.path.realpath(s.path), dst)
    return out


class Split:
    """One split at 8 kHz: origins (whole tracks) by label, samples as (label, audio, start sample)."""

    def __init__(self, layout: Path, split: str, cache: Path):
        qs = read_queryset(layout, split=split)
        cache.mkdir(parents=True, exist_ok=True)
        self.origins: dict[str, np.ndarray] = {}
        for o in qs.origins:
            f = cache / f"{o.label}.npy"
            if not f.exists():
                np.save(f, audio.load(o.path, SR).astype(np.float16))
            self.origins[o.label] = np.load(f, mmap_mode="r")
        self.labels = sorted(self.origins)
        self.samples, self.specs = [], []  # the degradation of each sample: its make_queries stage
        for s in qs.samples:
            x = audio.load(s.path, SR)
            if len(x) >= NS:
                self.samples.append((s.label, x, int(round(s.start * SR))))
                self.specs.append(Path(os.path.realpath(s.path)).parents[3].name)
        self.hours = sum(len(x) for x in self.origins.values()) / SR / 3600


def origin_window(x: np.ndarray, start: int) -> np.ndarray:
    w = np.asarray(x[max(start, 0) : max(start, 0) + NO], dtype=np.float32)
    return np.pad(w, (0, NO - len(w)))


def draw_pair(split: Split, rng: np.random.Generator, kind: str, i: int | None = None):
    """(origin window, sample window, label 1/0, offset seconds of the sample in the window or nan)."""
    label, x, start = split.samples[rng.integers(len(split.samples)) if i is None else i]
    u = int(rng.integers(0, len(x) - NS + 1))
    s = x[u : u + NS]
    p = start + u  # where the sample window starts in its origin
    track = split.origins[label]
    if kind == "pos":
        lo, hi = max(0, p + NS - NO), min(p, len(track) - NO)
        ws = int(rng.integers(lo, hi + 1)) if hi >= lo else max(0, p + NS - NO)
        return origin_window(track, ws), s, 1, (p - ws) / SR
    if kind == "hard":
        before, after = max(0, p - NO), max(0, len(track) - NO - (p + NS))
        if before + after > 0:
            r = int(rng.integers(0, before + after))
            ws = r if r < before else p + NS + (r - before)
            return origin_window(track, ws), s, 0, math.nan
        kind = "easy"
    other = split.labels[rng.integers(len(split.labels))]
    while other == label and len(split.labels) > 1:
        other = split.labels[rng.integers(len(split.labels))]
    t = split.origins[other]
    return origin_window(t, int(rng.integers(0, max(1, len(t) - NO)))), s, 0, math.nan


def batch(pairs):
    o, s, y, off = zip(*pairs)
    return (
        torch.from_numpy(np.stack(o)),
        torch.from_numpy(np.stack(s)),
        torch.tensor(y, dtype=torch.float32),
        torch.tensor(off),
    )


def val_pairs(split: Split, seed: int = 0):
    rng = np.random.default_rng(seed)
    pairs, kinds = [], []
    for i in range(len(split.samples)):
        for kind in ("pos", "hard", "easy"):
            pairs.append(draw_pair(split, rng, kind, i))
            kinds.append(kind)
    return pairs, np.array(kinds)


def auc(scores: np.ndarray, y: np.ndarray) -> float:
    """ROC-AUC by ranks (ties averaged)."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    s = scores[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    npos, nneg = int(y.sum()), int(len(y) - y.sum())
    return float((ranks[y == 1].sum() - npos * (npos + 1) / 2) / (npos * nneg))


def metrics(scores: np.ndarray, kinds: np.ndarray, threshold: float | None = None) -> dict:
    y = (kinds == "pos").astype(int)
    out = {
        "auc": auc(scores, y),
        "auc_hard": auc(scores[kinds != "easy"], y[kinds != "easy"]),
        "auc_easy": auc(scores[kinds != "hard"], y[kinds != "hard"]),
    }
    # accuracy at the best threshold (on these pairs: an optimistic figure, the same for every method)
    cand = np.unique(scores)
    accs = [((scores >= t) == y).mean() for t in cand]
    out["acc_best"] = float(max(accs))
    if threshold is not None:
        out["acc"] = float(((scores >= threshold) == y).mean())
    return out


# ----------------------------------------------------------------------------- the matcher


def evaluate_matcher(model, pairs, kinds, bs: int = 64):
    """The match head's metrics, its alignment's offset error on positives, and the alignment readout's
    metrics (``align_*``: :meth:`CrossAttentionMatcher.alignment_score` as the match score)."""
    model.eval()
    logits, offs, ascores, aoffs = [], [], [], []
    with torch.inference_mode():
        for i in range(0, len(pairs), bs):
            o, s, _, _ = batch(pairs[i : i + bs])
            lg, al = model(o, s)
            logits.append(lg)
            offs.append(model.offset_seconds(al))
            sc, off = model.alignment_score(al)
            ascores.append(sc)
            aoffs.append(off)
    model.train()
    logits, offs = torch.cat(logits).numpy(), torch.cat(offs).numpy()
    m = metrics(logits, kinds, threshold=0.0)
    true = np.array([p[3] for p in pairs])
    err = np.abs(offs - true)[kinds == "pos"]
    m["offset_median_err_s"] = float(np.median(err))
    m["offset_within_0.1s"] = float((err <= 0.1).mean())
    m.update({f"align_{k}": v for k, v in metrics(torch.cat(ascores).numpy(), kinds).items()})
    aerr = np.abs(torch.cat(aoffs).numpy() - true)[kinds == "pos"]
    m["align_offset_within_0.1s"] = float((aerr <= 0.1).mean())
    return m


def curve_point(epoch: int, step: int, cpu: float, wall0: float, losses: list[float], scores: dict) -> dict:
    """One point of a training curve: where the run is, its mean loss since the last point, and ``scores``."""
    return {
        "epoch": epoch,
        "step": step,
        "cpu_s": round(cpu, 1),
        "wall_s": round(time.time() - wall0, 1),
        "loss": float(np.mean(losses)),
        **scores,
    }


def train_matcher(train: Split, pairs, kinds, budget: float, epoch_steps: int, seed: int, bs: int = 32):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed + 1)
    model = CrossAttentionMatcher()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min(1.0, (k + 1) / 100))
    kinds_cycle = ["pos", "pos", "hard", "easy"]
    curve, cpu, wall0, step = [], 0.0, time.time(), 0
    curve.append(
        {"epoch": 0, "step": 0, "cpu_s": 0.0, "wall_s": 0.0, "loss": None, **evaluate_matcher(model, pairs, kinds)}
    )
    print(f"  matcher epoch 0: auc {curve[-1]['auc']:.3f}, alignment readout {curve[-1]['align_auc']:.3f}", flush=True)
    losses = []
    while cpu < budget:
        c0 = time.process_time()
        o, s, y, off = batch([draw_pair(train, rng, kinds_cycle[i % 4]) for i in range(bs)])
        logit, align = model(o, s)
        loss = F.binary_cross_entropy_with_logits(logit, y)
        pos = y == 1
        tokens = torch.round(off[pos] * SR / TOKEN_HOP)
        loss = loss + 0.5 * model.alignment_loss(align[pos], tokens)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        cpu += time.process_time() - c0
        losses.append(float(loss))
        step += 1
        if step % epoch_steps == 0 or cpu >= budget:
            m = evaluate_matcher(model, pairs, kinds)
            curve.append(curve_point(len(curve), step, cpu, wall0, losses, m))
            losses = []
            print(
                f"  matcher epoch {len(curve) - 1} (step {step}, cpu {cpu:.0f} s): loss {curve[-1]['loss']:.3f} "
                f"auc {m['auc']:.3f} (hard {m['auc_hard']:.3f}, easy {m['auc_easy']:.3f}) acc@0 {m['acc']:.3f} "
                f"offset err {m['offset_median_err_s']:.3f} s; alignment readout auc {m['align_auc']:.3f} "
                f"(hard {m['align_auc_hard']:.3f}, easy {m['align_auc_easy']:.3f})",
                flush=True,
            )
    return model, curve


# ----------------------------------------------------------------------------- the fingerprint


def segments(x: torch.Tensor, hop_s: float) -> torch.Tensor:
    """``(n, samples)`` -> ``(n, k, SR)`` 1 s segments at ``hop_s``."""
    return x.unfold(1, SR, int(round(hop_s * SR)))


def pair_scores(embed, pairs, bs: int = 32, aligned: bool = False) -> np.ndarray:
    """Mean over the sample's 1 s segments (hop 0.5 s) of the best cosine against the origin's (hop 0.1 s).

    ``aligned``: the segments must agree on one offset (landmark voting's rule, and the alignment
    readout's): the best over offsets ``d`` (0..1 s at 0.1 s) of the mean cosine of sample segment
    ``k`` with origin segment ``d + 5 k``."""
    out = []
    with torch.inference_mode():
        for i in range(0, len(pairs), bs):
            o, s, _, _ = batch(pairs[i : i + bs])
            so, ss = segments(o, 0.1), segments(s, 0.5)
            eo = embed(so.reshape(-1, SR)).reshape(so.shape[0], so.shape[1], -1)
            es = embed(ss.reshape(-1, SR)).reshape(ss.shape[0], ss.shape[1], -1)
            sim = es @ eo.transpose(1, 2)  # (batch, sample segments, origin segments)
            if aligned:
                k = (
                    torch.arange(sim.shape[1])[:, None] * 5
                    + torch.arange(sim.shape[2] - 5 * (sim.shape[1] - 1))[None, :]
                )
                out.append(sim.gather(2, k.expand(sim.shape[0], -1, -1)).mean(dim=1).amax(dim=1))
            else:
                out.append(sim.amax(dim=2).mean(dim=1))
    return torch.cat(out).numpy()


def logmel_embed(net: FingerprintNet):
    def f(x: torch.Tensor) -> torch.Tensor:
        v = net.level_free(net.features(x)).flatten(1)
        return F.normalize(v - v.mean(dim=1, keepdim=True), dim=1)

    return f


def train_fingerprint(train: Split, pairs, kinds, budget: float, epoch_steps: int, seed: int, bs: int = 64):
    """NT-Xent on (origin second, the sample's same second) pairs, for ``budget`` CPU seconds."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed + 2)
    net = FingerprintNet()
    opt = torch.optim.AdamW(net.parameters(), lr=5e-4, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min(1.0, (k + 1) / 100))

    def score():
        net.eval()
        m = metrics(pair_scores(net.embed, pairs), kinds)
        net.train()
        return m

    curve = [{"epoch": 0, "step": 0, "cpu_s": 0.0, "wall_s": 0.0, "loss": None, **score()}]
    print(f"  fingerprint epoch 0: auc {curve[-1]['auc']:.3f}", flush=True)
    cpu, wall0, step, losses = 0.0, time.time(), 0, []
    jitter = int(0.05 * SR)
    while cpu < budget:
        c0 = time.process_time()
        a, b = [], []
        for _ in range(bs):
            label, x, start = train.samples[rng.integers(len(train.samples))]
            u = int(rng.integers(0, len(x) - SR + 1))
            track = train.origins[label]
            ws = min(max(0, start + u + int(rng.integers(-jitter, jitter + 1))), len(track) - SR)
            a.append(np.asarray(track[ws : ws + SR], dtype=np.float32))
            b.append(x[u : u + SR])
        za, zb = net(torch.from_numpy(np.stack(a))), net(torch.from_numpy(np.stack(b)))
        sim = za @ zb.T / 0.05
        target = torch.arange(bs)
        loss = (F.cross_entropy(sim, target) + F.cross_entropy(sim.T, target)) / 2
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        cpu += time.process_time() - c0
        losses.append(float(loss))
        step += 1
        if step % epoch_steps == 0 or cpu >= budget:
            m = score()
            curve.append(curve_point(len(curve), step, cpu, wall0, losses, m))
            losses = []
            print(
                f"  fingerprint epoch {len(curve) - 1} (step {step}, cpu {cpu:.0f} s): loss {curve[-1]['loss']:.3f} "
                f"auc {m['auc']:.3f} (hard {m['auc_hard']:.3f}, easy {m['auc_easy']:.3f})",
                flush=True,
            )
    return net.eval(), curve


def find_run() -> Path | None:
    for base in (Path("bench-work/fpdata/runs"), Path("runs")):
        for cfg in sorted(base.glob("**/config.json")) if base.is_dir() else []:
            try:
                if (
                    json.loads(cfg.read_text()).get("architecture") == "fingerprint"
                    and (cfg.parent / "model.safetensors").exists()
                ):
                    return cfg.parent
            except (OSError, ValueError):
                continue
    return None


def load_run(folder: Path) -> FingerprintNet:
    from safetensors.torch import load_file

    from tuneseek.models.registry import build

    net = build(json.loads((folder / "config.json").read_text()))
    net.load_state_dict(load_file(str(folder / "model.safetensors")))
    return net.eval()


# ----------------------------------------------------------------------------- cost


def cost(model: CrossAttentionMatcher, net: FingerprintNet, reps: int = 3) -> dict:
    model.eval()
    o, s = torch.randn(64, NO), torch.randn(64, NS)

    def timed(f) -> float:
        best = math.inf
        for _ in range(reps):
            t = time.perf_counter()
            f()
            best = min(best, time.perf_counter() - t)
        return best

    with torch.inference_mode():
        pair = timed(lambda: model(o, s)) / 64
        mem = model.encode(o)

        def cross_only():
            h = model.encode(s[:1]).expand(64, -1, -1)
            for layer in model.cross:
                h = layer(h, mem)
            model.head(torch.cat([h.mean(1), h.amax(1)], 1))

        cross = timed(cross_only) / 64
        seg = timed(lambda: net(torch.randn(64, SR))) / 64
    # one 2 s query against N hours: the matcher runs over 3 s origin windows at hop 1 s (a 2 s sample fits
    # one of them whole); the fingerprint embeds 3 query segments and searches 7200 N vectors (hop 0.5 s)
    d = FingerprintNet().embedding_dim
    lib = np.random.default_rng(0).standard_normal((72000, d)).astype(np.float32)
    q = np.random.default_rng(1).standard_normal((3, d)).astype(np.float32)
    search_10h = timed(lambda: (q @ lib.T).argmax(axis=1))  # exact search, 10 h, NumPy
    out = {
        "matcher_pair_s": pair,
        "matcher_pair_cached_origin_s": cross,
        "fingerprint_segment_s": seg,
        "fingerprint_index_build_s_per_audio_hour": seg * 7200,
        "fingerprint_exact_search_s_per_library_hour": search_10h / 10,
    }
    for hours in (1, 10, 100, 1000):
        out[f"query_s_{hours}h"] = {
            "matcher": pair * 3600 * hours,
            "matcher_cached_origin": cross * 3600 * hours,
            "fingerprint_exact": 3 * seg + search_10h / 10 * hours,
        }
    return out


# ----------------------------------------------------------------------------- a finished run on another split


def evaluate_saved(root: Path, layout: Path, split_name: str, seed: int, tag: str = "") -> int:
    """Every method of a finished run on ``split_name``'s pairs (made as valid's are), overall and per degradation."""
    split = Split(layout, split_name, root / "xm-cache")
    pairs, kinds = val_pairs(split, seed)
    specs = np.repeat(np.array(split.specs), 3)  # val_pairs: three pairs per sample, in order
    model = CrossAttentionMatcher()
    model.load_state_dict(torch.load(root / "cross_matcher-model.pt"))
    model.eval()
    logits, ascores = [], []
    with torch.inference_mode():
        for i in range(0, len(pairs), 64):
            o, s, _, _ = batch(pairs[i : i + 64])
            lg, al = model(o, s)
            logits.append(lg)
            ascores.append(model.alignment_score(al)[0])
    torch.manual_seed(seed)
    untrained = FingerprintNet().eval()
    scores = {
        "cross-attention matcher (match head)": torch.cat(logits).numpy(),
        "cross-attention matcher (alignment readout)": torch.cat(ascores).numpy(),
        "log-mel cosine": pair_scores(logmel_embed(untrained), pairs),
        "fingerprint (untrained)": pair_scores(untrained.embed, pairs),
    }
    if (root / "cross_matcher-fingerprint.pt").exists():
        net = FingerprintNet()
        net.load_state_dict(torch.load(root / "cross_matcher-fingerprint.pt"))
        scores["fingerprint (trained here)"] = pair_scores(net.eval().embed, pairs)
        scores["fingerprint (trained here), one offset"] = pair_scores(net.embed, pairs, aligned=True)
    run = find_run()
    if run is not None:
        scores[f"fingerprint (run {run})"] = pair_scores(load_run(run).embed, pairs)
        scores[f"fingerprint (run {run}), one offset"] = pair_scores(load_run(run).embed, pairs, aligned=True)
    names = sorted(set(split.specs))
    result = {
        "split": split_name,
        "tracks": len(split.labels),
        "samples": len(split.samples),
        "pairs": {k: int((kinds == k).sum()) for k in ("pos", "hard", "easy")},
        "methods": {
            m: {"all": metrics(sc, kinds), **{n: metrics(sc[specs == n], kinds[specs == n]) for n in names}}
            for m, sc in scores.items()
        },
    }
    out = root / f"cross_matcher-{tag}{split_name}.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"\n{split_name}: {result['tracks']} tracks, {result['samples']} samples, pairs {result['pairs']}")
    print(f"| method | ROC-AUC | vs same-track | vs other-track | acc (best thr.) | {' | '.join(names)} |")
    print("| --- " * (5 + len(names)) + "|")
    for m, r in result["methods"].items():
        a = r["all"]
        per = " | ".join(f"{r[n]['auc']:.3f}" for n in names)
        print(f"| {m} | {a['auc']:.3f} | {a['auc_hard']:.3f} | {a['auc_easy']:.3f} | {a['acc_best']:.3f} | {per} |")
    print(f"wrote {out}")
    return 0


# ----------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=Path, default=Path("bench-work/fpdata"))
    ap.add_argument("--budget", type=float, default=600.0, help="matcher training, CPU seconds (default 600)")
    ap.add_argument(
        "--fp-budget", type=float, default=600.0, help="fingerprint NT-Xent training, CPU seconds (0: skip)"
    )
    ap.add_argument("--epoch-steps", type=int, default=25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-only", action="store_true")
    ap.add_argument(
        "--hard",
        action="store_true",
        help=f"with --evaluate: on samples made with {', '.join(HARD_SPECS)} (bench-work/fpdata/xm-hard)",
    )
    ap.add_argument(
        "--evaluate",
        metavar="SPLIT",
        help="score the saved models of a finished run on SPLIT's pairs (e.g. test), per degradation",
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    t0 = time.time()
    print("data:", flush=True)
    layout = make_layout(args.root, {"train": 4, "valid": 8, "test": 8})
    train = Split(layout, "train", args.root / "xm-cache")
    valid = Split(layout, "valid", args.root / "xm-cache")
    print(
        f"  train: {len(train.labels)} tracks, {train.hours:.2f} h, {len(train.samples)} samples; "
        f"valid: {len(valid.labels)} tracks, {valid.hours:.2f} h, {len(valid.samples)} samples ({time.time() - t0:.0f} s)",
        flush=True,
    )
    if args.data_only:
        return 0
    if args.evaluate and args.hard:
        hard = make_layout(args.root, {"valid": 8, "test": 8}, HARD_SPECS, "xm-hard")
        return evaluate_saved(args.root, hard, args.evaluate, args.seed, "hard-")
    if args.evaluate:
        return evaluate_saved(args.root, layout, args.evaluate, args.seed)
    pairs, kinds = val_pairs(valid, args.seed)
    result: dict = {
        "data": {
            "split_tracks": {k: [p.name for p in v] for k, v in split_tracks().items()},
            "train_tracks": len(train.labels),
            "train_hours": round(train.hours, 2),
            "train_samples": len(train.samples),
            "valid_tracks": len(valid.labels),
            "valid_samples": len(valid.samples),
            "valid_pairs": {k: int((kinds == k).sum()) for k in ("pos", "hard", "easy")},
            "degradations": list(SPECS),
            "origin_s": ORIGIN_S,
            "sample_s": SAMPLE_S,
        },
        "command": " ".join(["nice -n 10 python", *sys.argv]),
    }
    print("matcher:", flush=True)
    model, mcurve = train_matcher(train, pairs, kinds, args.budget, args.epoch_steps, args.seed)
    torch.save(model.state_dict(), args.root / "cross_matcher-model.pt")
    result["matcher"] = {
        "parameters": sum(p.numel() for p in model.parameters()),
        "hparams": model.hparams,
        "curve": mcurve,
    }
    base: dict = {}
    torch.manual_seed(args.seed)
    untrained = FingerprintNet().eval()
    base["log-mel cosine"] = metrics(pair_scores(logmel_embed(untrained), pairs), kinds)
    base["fingerprint (untrained)"] = metrics(pair_scores(untrained.embed, pairs), kinds)
    run = find_run()
    if run is not None:
        base[f"fingerprint (run {run})"] = metrics(pair_scores(load_run(run).embed, pairs), kinds)
    net = untrained
    if args.fp_budget > 0:
        print("fingerprint:", flush=True)
        net, fcurve = train_fingerprint(train, pairs, kinds, args.fp_budget, args.epoch_steps, args.seed)
        torch.save(net.state_dict(), args.root / "cross_matcher-fingerprint.pt")
        result["fingerprint_trained_here"] = {"parameters": sum(p.numel() for p in net.parameters()), "curve": fcurve}
        base["fingerprint (trained here)"] = {
            k: v for k, v in fcurve[-1].items() if k in ("auc", "auc_hard", "auc_easy", "acc_best")
        }
    result["baselines"] = base
    result["cost"] = cost(model, net)
    result["wall_s"] = round(time.time() - t0, 1)
    out = args.root / "cross_matcher.json"
    out.write_text(json.dumps(result, indent=1))

    last = mcurve[-1]
    print("\n| method | ROC-AUC | AUC vs same-track | AUC vs other-track | acc (best thr.) | train CPU s |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(
        f"| cross-attention matcher | {last['auc']:.3f} | {last['auc_hard']:.3f} | {last['auc_easy']:.3f} | "
        f"{last['acc_best']:.3f} (at 0: {last['acc']:.3f}) | {last['cpu_s']:.0f} |"
    )
    print(
        f"| cross-attention matcher, alignment readout | {last['align_auc']:.3f} | {last['align_auc_hard']:.3f} | "
        f"{last['align_auc_easy']:.3f} | {last['align_acc_best']:.3f} | (same model) |"
    )
    for name, m in base.items():
        cpu = f"{result['fingerprint_trained_here']['curve'][-1]['cpu_s']:.0f}" if "trained here" in name else "-"
        print(f"| {name} | {m['auc']:.3f} | {m['auc_hard']:.3f} | {m['auc_easy']:.3f} | {m['acc_best']:.3f} | {cpu} |")
    print("\n| epoch | step | CPU s | wall s | loss | AUC | acc@0 | offset err s | alignment readout AUC |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for c in mcurve:
        loss = "-" if c["loss"] is None else f"{c['loss']:.3f}"
        print(
            f"| {c['epoch']} | {c['step']} | {c['cpu_s']:.0f} | {c['wall_s']:.0f} | {loss} | {c['auc']:.3f} | {c['acc']:.3f} | "
            f"{c['offset_median_err_s']:.3f} | {c['align_auc']:.3f} |"
        )
    print("\ncost:", json.dumps(result["cost"], indent=1))
    print(f"wrote {out} ({result['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
