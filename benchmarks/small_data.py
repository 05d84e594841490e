#!/usr/bin/env python3
"""Learning from small labelled data (issue 14): every contender on the same held-out split, side by side.

    python benchmarks/make_small_data.py                  # the datasets, once (~1.5 min)
    python benchmarks/small_data.py --data folder:bench-work/smalldata/soundtracks
    python benchmarks/small_data.py --data folder:bench-work/smalldata/composers --only mfcc,probe,probe-no-rhythm
    python benchmarks/small_data.py --report-only          # rebuild the reports from what is there

For one labelled dataset (``--data folder:PATH``; the datasets of ``make_small_data.py``: 30 s
excerpts of Debian game music, split 80/10/10 *by track*, stratified by label, seed 0: no track
straddles splits), it trains each contender through the public CLI, one at a time, into
``bench-work/smalldata/runs/<dataset>/<contender>/``, then scores it with
``tuneseek evaluate model RUN --split test --json`` (and ``--split valid``). Nothing is tuned on the
test split: every contender runs with its command's defaults; the probes choose their regularisation
by cross-validation on the training split (folds by track), the from-scratch models their best epoch
on the valid split.

Contenders (``--only``, comma-separated; default all, in this order):

=================  ===================================================================================
``mfcc``           ``tuneseek train classifier --data D --features mfcc --out R`` (MFCC statistics +
                   logistic regression: the baseline)
``probe``          ``tuneseek train classifier --data D --from musicnn --out R`` (logistic regression on
                   frozen pooled musicnn layers + rhythm and timbre descriptors)
``probe-no-rhythm`` ``tuneseek train classifier --data D --from musicnn --features musicnn,timbre --out R``
``finetune``       ``tuneseek train classifier --data D --from musicnn --fine-tune --out R``
``crnn-before``    ``tuneseek train genre --data D --out R --epochs 30 --patience 5 --windows-per-item 1``
                   (from scratch, pinned to the fixed defaults before the small-data ones: the "before")
``crnn``           ``tuneseek train genre --data D --out R`` (from scratch, the defaults of the day: since
                   issue 14, chosen for the training split's size)
``fcn``            ``tuneseek train genre --arch fcn --data D --out R`` (from scratch)
=================  ===================================================================================

Every train command also gets ``--cache CACHE`` (``bench-work/smalldata/cache``: the decoded audio
and the probes' per-window features, shared by all) and ``--loader-workers 1`` (``--loader-workers``; the benchmark machine has 2 shared
cores), plus ``--train-arg`` if given; ``--split-seed N`` (N > 0) adds ``--data-option seed=N`` and
names the dataset ``<name>-seedN`` (another split by track of the same clips: with a test split of a
few tracks per label, one split's accuracy is noisy; the combined report gives each contender's
test accuracy on every split seed run, and their mean).

A contender whose command fails (an option that has not landed yet, an error) is recorded as
failed, and the others go on. A re-run reuses every finished run (a
run folder with ``summary.json`` or ``model.safetensors`` from a command that succeeded, and its
evaluations); a training that was stopped from outside (on a shared machine, someone's ``pkill``)
goes on from its last epoch with ``--resume`` (its wall time is then the attempts' sum, each counted to
its last checkpoint; ``--no-resume`` starts it again); any other failed run is made again from an empty
folder; ``--fresh`` redoes the named contenders. A failure is reported with the last line of the command's output (stderr and
stdout together: the error line).

Recorded per contender (``runs/<dataset>/<contender>.bench.json``; its output in ``<contender>.log``):
the command, the code's commit, its exit status, wall seconds of the train command (it includes
decoding the audio, and for a probe computing musicnn's and the descriptors' windows, when the cache
does not hold them yet: the first contender that needs them pays that), CPU
seconds of the command and its children, the cores other processes used meanwhile (from
``/proc/stat``: on a shared machine, read a wall time with that figure), the run's ``summary.json``
(epochs run, best epoch and valid score: whether a from-scratch model was still improving when it
stopped), and each split's metrics from ``tuneseek evaluate model --json`` (accuracy, balanced
accuracy, per-class recall, confusion matrix, rows = truth).

Writes ``runs/<dataset>/results.json`` and ``runs/<dataset>/report.md`` (the command, the data: clips
and tracks per split and label; a table: contender, test accuracy, balanced accuracy, valid
accuracy, train seconds, epochs; each confusion matrix with the label names; what failed and why),
and ``bench-work/smalldata/report.md``, every dataset's report one after another; the report is
printed.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from machine_load import cpu_busy_seconds

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}  # the logs fill as the commands run
WORK = REPO / "bench-work" / "smalldata"

#: contender -> the train command after ``tuneseek`` ({data}, {out} filled in), in report order.
CONTENDERS: dict[str, list[str]] = {
    "mfcc": ["train", "classifier", "--data", "{data}", "--features", "mfcc", "--out", "{out}"],
    "probe": ["train", "classifier", "--data", "{data}", "--from", "musicnn", "--out", "{out}"],
    "probe-no-rhythm": [
        "train",
        "classifier",
        "--data",
        "{data}",
        "--from",
        "musicnn",
        "--features",
        "musicnn,timbre",
        "--out",
        "{out}",
    ],  # fmt: skip
    "finetune": ["train", "classifier", "--data", "{data}", "--from", "musicnn", "--fine-tune", "--out", "{out}"],
    "crnn-before": [
        "train",
        "genre",
        "--data",
        "{data}",
        "--out",
        "{out}",
        "--epochs",
        "30",
        "--patience",
        "5",
        "--windows-per-item",
        "1",
    ],  # fmt: skip
    "crnn": ["train", "genre", "--data", "{data}", "--out", "{out}"],
    "fcn": ["train", "genre", "--arch", "fcn", "--data", "{data}", "--out", "{out}"],
}
DESCRIPTION = {
    "mfcc": "MFCC statistics + logistic regression (baseline)",
    "probe": "logistic regression on frozen musicnn layers + rhythm/timbre descriptors",
    "probe-no-rhythm": "probe without the rhythm descriptors (musicnn + timbre)",
    "finetune": "musicnn fine-tuned",
    "crnn-before": "CRNN from scratch, the defaults before issue 14 (30 epochs, patience 5, 1 window/item)",
    "crnn": "CRNN from scratch (the small-data defaults)",
    "fcn": "FCN from scratch",
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def tuneseek() -> list[str]:
    exe = shutil.which("tuneseek")
    return [exe] if exe else [sys.executable, "-m", "tuneseek"]


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def run_logged(cmd: list[str], log_path: Path, title: str) -> dict:
    """Run ``cmd``, its stdout and stderr appended to ``log_path`` as they come; wall and CPU seconds,
    the cores other processes used meanwhile, the exit status, its output and its last line."""
    with open(log_path, "a") as f:
        f.write(f"\n===== {title} ({_dt.datetime.now().isoformat(timespec='seconds')})\n$ {shlex.join(cmd)}\n")
        f.flush()
        start = f.tell()
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        b0, t0 = cpu_busy_seconds(), time.perf_counter()
        p = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, text=True, cwd=REPO, env=ENV)
        wall = time.perf_counter() - t0
        busy = cpu_busy_seconds() - b0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(log_path) as f:
        f.seek(start)
        output = f.read()
    with open(log_path, "a") as f:
        f.write(f"===== exit {p.returncode}, {wall:.1f} s\n")
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return {
        "command": shlex.join(cmd),
        "rc": p.returncode,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "others_cores": round(max(0.0, busy - cpu) / wall, 2) if wall > 0 else None,
        "stdout": output,
        "stderr_last": last_line(output),
    }


def code_version() -> str:
    """The commit the installed (editable) package is at, ``+dirty`` when src/ has uncommitted edits."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], capture_output=True, text=True, cwd=REPO)
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def wall_all_attempts(last_wall: float, attempts: list[dict]) -> int:
    """The last attempt's wall seconds plus what each earlier one added up to its last checkpoint (never
    negative: an attempt stopped before it saved an epoch added nothing; the time it lost is not counted)."""
    return round(last_wall + sum(max(0, x.get("seconds_to_last_checkpoint") or 0) for x in attempts))


def epochs_logged(run: Path) -> list[int]:
    """The epochs with a validation result in a Lightning run's CSV logs."""
    import csv

    done = set()
    for f in run.glob("logs/run-*/metrics.csv"):
        with open(f) as fh:
            for row in csv.DictReader(fh):
                if row.get("epoch") and any(row.get(k) for k in row if k and k.startswith("val_")):
                    done.add(int(row["epoch"]))
    return sorted(done)


def finished(run: Path) -> bool:
    return (run / "summary.json").exists() or (run / "model.safetensors").exists()


def parse_json_out(text: str) -> dict | None:
    """The last JSON object printed (``--json`` prints one object per line)."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return None


def train_contender(name: str, a, data: str, ds_dir: Path) -> dict:
    run = ds_dir / name
    rec_path = ds_dir / f"{name}.bench.json"
    log_path = ds_dir / f"{name}.log"
    rec = json.loads(rec_path.read_text()) if rec_path.exists() else {}
    if rec.get("train", {}).get("rc") == 0 and finished(run) and not a.fresh:
        log(f"{name}: reusing the finished run {run}")
    else:
        last = run / "lightning" / "last.ckpt"
        attempts = []
        resume = last.exists() and not finished(run) and not a.fresh and not a.no_resume
        if resume:  # an attempt that was stopped from outside: go on from its last epoch
            attempts = rec.get("attempts", [])
            started = rec.get("train", {}).get("started_at") or rec.get("started_at")
            end = _dt.datetime.fromtimestamp(last.stat().st_mtime)
            attempts.append(
                {
                    "started_at": started,
                    "last_checkpoint_at": end.isoformat(timespec="seconds"),
                    # what the attempt added: 0 when it was stopped before it saved an epoch
                    "seconds_to_last_checkpoint": max(
                        0, round((end - _dt.datetime.fromisoformat(started)).total_seconds())
                    )
                    if started
                    else None,
                    "epochs_done": len(epochs_logged(run)),
                }
            )
            log(f"{name}: resuming the interrupted run in {run} ({attempts[-1]['epochs_done']} epochs done)")
        elif run.exists():
            shutil.rmtree(run)
        rec = {"contender": name, "description": DESCRIPTION[name], "attempts": attempts}
        cmd = tuneseek() + [x.format(data=data, out=str(run)) for x in CONTENDERS[name]]
        cmd += ["--cache", str(a.cache), "--loader-workers", str(a.loader_workers)]
        if a.split_seed:
            cmd += ["--data-option", f"seed={a.split_seed}"]
        for extra in a.train_arg:
            cmd += shlex.split(extra)
        if resume:
            cmd += ["--resume"]
        log(f"{name}: {shlex.join(cmd)}")
        code = code_version()
        started_at = _dt.datetime.now().isoformat(timespec="seconds")
        # said before the command runs, so that a run stopped from outside (this process with it) leaves a trace
        rec_path.write_text(json.dumps({**rec, "status": "running", "train": {"started_at": started_at}}, indent=1))
        t = run_logged(cmd, log_path, "train")
        t["code"] = code
        t.pop("stdout")
        t["started_at"] = started_at
        t["finished_at"] = _dt.datetime.now().isoformat(timespec="seconds")
        if attempts:  # the whole training: what the earlier attempts added (to their last checkpoint), and this one
            t["wall_s_all_attempts"] = wall_all_attempts(t["wall_s"], attempts)
        rec["train"] = t
        if t["rc"] != 0 or not finished(run):
            rec["status"] = "failed"
            rec["error"] = t["stderr_last"] or f"exit {t['rc']}, no model in {run}"
            if t["rc"] < 0:
                rec["error"] = (
                    f"killed by signal {-t['rc']} (from outside) after {t['wall_s']:.0f} s; last line: {rec['error']}"
                )
            elif t["rc"] == 0 and not finished(run):
                rec["error"] = (
                    f"exit 0 but no model in the run folder (stopped from outside?); last line: {rec['error']}"
                )
            log(f"{name}: FAILED after {t['wall_s']} s: {rec['error']}")
            rec_path.write_text(json.dumps(rec, indent=1))
            return rec
        log(f"{name}: trained in {t['wall_s']} s")
        rec["eval"] = {}
    rec["status"] = "trained"
    if (run / "summary.json").exists():
        rec["summary"] = json.loads((run / "summary.json").read_text())
    rec.setdefault("eval", {})
    for split in a.splits:
        if split in rec["eval"] and rec["eval"][split].get("rc") == 0 and not a.re_evaluate:
            continue
        cmd = tuneseek() + ["evaluate", "model", str(run), "--split", split, "--json", "--cache", str(a.cache)]
        e = run_logged(cmd, log_path, f"evaluate {split}")
        out = parse_json_out(e.pop("stdout"))
        if e["rc"] == 0 and out is None and (run / "eval" / split / "metrics.json").exists():
            out = json.loads((run / "eval" / split / "metrics.json").read_text())
        e["metrics"] = out
        if e["rc"] != 0 or out is None:
            e["error"] = e["stderr_last"] or "no JSON printed"
            log(f"{name}: evaluate --split {split} FAILED: {e['error']}")
        else:
            log(f"{name}: {split} accuracy {out.get('accuracy')}, balanced {out.get('balanced_accuracy')}")
        rec["eval"][split] = e
    rec["status"] = "done" if all(rec["eval"].get(s, {}).get("rc") == 0 for s in a.splits) else "evaluation failed"
    rec_path.write_text(json.dumps(rec, indent=1))
    return rec


# ----------------------------------------------------------------------------- report


def dataset_facts(data: str, options: dict) -> dict:
    from tuneseek.data.datasets import open_dataset

    ds = open_dataset(data, **options)
    facts = {"spec": data, "labels": list(ds.labels), "splits": {}}
    for split, items in ds.splits.items():
        facts["splits"][split] = {
            "clips": len(items),
            "tracks": len({i.group for i in items}),
            "clips_per_label": dict(Counter(i.labels[0] for i in items)),
            "tracks_per_label": dict(Counter(i.labels[0] for i in {i.group: i for i in items}.values())),
        }
    return facts


def pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def epochs_note(summary: dict | None) -> str:
    """Epochs run, best epoch, and whether the valid metric was still improving at the end; for a
    probe, the regularisation its cross-validation chose."""
    if not summary:
        return "–"
    cv = summary.get("cross_validation")
    if summary.get("kind") == "probe" or cv:
        return f"probe: C {cv.get('chosen_C')} ({cv.get('folds')}-fold CV on train)" if cv else "probe"
    if summary.get("epochs_run") is None:
        return "–"
    run, best = summary.get("epochs_run"), summary.get("best_epoch")
    cap = (summary.get("settings") or {}).get("epochs")
    note = f"{run}" + (f"/{cap}" if cap else "") + (f", best {best}" if best else "")
    if best and run and best >= run:
        note += " (still improving)"
    elif cap and run and run < cap:
        note += " (early stop)"
    return note


def seeds_table(runs: Path) -> str:
    """Test accuracy of each contender over the split seeds run (``<name>`` and ``<name>-seedN``)."""
    by: dict[str, dict[int, dict]] = {}
    for f in sorted(runs.glob("*/results.json")):
        name = f.parent.name
        base, _, seed = name.rpartition("-seed")
        if not (base and seed.isdigit()):
            base, seed = name, "0"
        by.setdefault(base, {})[int(seed)] = json.loads(f.read_text())
    out = []
    for base, seeds in sorted(by.items()):
        if len(seeds) < 2:
            continue
        order = sorted(seeds)
        out += [
            f"## `{base}`: test accuracy (balanced) over {len(order)} splits by track (split seeds {order})",
            "",
            "| contender | " + " | ".join(f"seed {k}" for k in order) + " | mean |",
            "| --- |" + " ---: |" * (len(order) + 1),
        ]
        for c in CONTENDERS:
            cells, accs = [], []
            for k in order:
                m = (((seeds[k]["contenders"].get(c) or {}).get("eval") or {}).get("test") or {}).get("metrics")
                if m:
                    cells.append(f"{pct(m['accuracy'])} ({pct(m.get('balanced_accuracy'))})")
                    accs.append(m["accuracy"])
                else:
                    cells.append("–")
            if accs:
                mean = pct(sum(accs) / len(accs)) + ("" if len(accs) == len(order) else f" of {len(accs)}")
                out.append(f"| {c} | " + " | ".join(cells) + f" | {mean} |")
        out.append("")
    return "\n".join(out)


def confusion_md(metrics: dict, labels: list[str]) -> str:
    m = metrics.get("confusion")
    if not m:
        return "(no confusion matrix)\n"
    width = max(len(x) for x in labels)
    head = "| truth \\ predicted | " + " | ".join(labels) + " | recall |"
    sep = "| --- |" + " ---: |" * (len(labels) + 1)
    rows = [head, sep]
    recall = metrics.get("per_class_recall") or {}
    for label, row in zip(labels, m):
        r = recall.get(label)
        cells = [f"**{v}**" if j == labels.index(label) and v else str(v) for j, v in enumerate(row)]
        rows.append(f"| {label:<{width}} | " + " | ".join(cells) + f" | {pct(r)} |")
    return "\n".join(rows) + "\n"


def report(ds_name: str, a, data: str, options: dict, records: dict[str, dict]) -> tuple[str, dict]:
    facts = dataset_facts(data, options)
    labels = facts["labels"]
    lines = [f"## Small labelled data: `{ds_name}` ({len(labels)} labels)", ""]
    lines += [
        f"`{data}`" + (f" with {options}" if options else "") + f"; run {time.strftime('%Y-%m-%d %H:%M')} on "
        f"{platform.node()} ({os.cpu_count()} cores, shared), `python benchmarks/small_data.py "
        f"{' '.join(shlex.quote(x) for x in sys.argv[1:])}`.",
        "",
        "| split | clips | tracks | clips per label (tracks) |",
        "| --- | ---: | ---: | --- |",
    ]
    for split, f in facts["splits"].items():
        per = ", ".join(f"{lb} {f['clips_per_label'].get(lb, 0)} ({f['tracks_per_label'].get(lb, 0)})" for lb in labels)
        lines.append(f"| {split} | {f['clips']} | {f['tracks']} | {per} |")
    lines += [
        "",
        "| contender | test accuracy | test balanced acc. | valid accuracy | train wall s (others' cores) | epochs / probe |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    failed = []
    for name, rec in records.items():
        ev = rec.get("eval", {})
        te = (ev.get("test") or {}).get("metrics") or {}
        va = (ev.get("valid") or {}).get("metrics") or {}
        t = rec.get("train", {})
        wall = f"{t['wall_s']:.0f} ({t.get('others_cores')})" if t.get("wall_s") is not None else "–"
        if rec.get("attempts") and t.get("wall_s") is not None and rec.get("status") != "failed":
            total = wall_all_attempts(t["wall_s"], rec["attempts"])
            wall = f"{total} in {len(rec['attempts']) + 1} attempts, resumed (last: {wall})"
        if rec.get("status") == "running":
            lines.append(f"| {name} | running (since {t.get('started_at')}) | | | | |")
            continue
        if rec.get("status") == "failed":
            lines.append(f"| {name} | failed | | | {wall} | |")
            failed.append((name, rec))
            continue
        lines.append(
            f"| {name} | {pct(te.get('accuracy'))} | {pct(te.get('balanced_accuracy'))} | {pct(va.get('accuracy'))} "
            f"| {wall} | {epochs_note(rec.get('summary'))} |"
        )
        for split in a.splits:
            if (ev.get(split) or {}).get("error"):
                failed.append((f"{name} (evaluate --split {split})", {"error": ev[split]["error"], "train": ev[split]}))
    lines += [
        "",
        f"Test: {facts['splits'].get('test', {}).get('clips')} clips from "
        f"{facts['splits'].get('test', {}).get('tracks')} tracks; one clip is "
        f"{100 / max(1, facts['splits'].get('test', {}).get('clips', 1)):.1f} points of accuracy. "
        "Train wall seconds include decoding the audio (and computing the probes' window features) into the "
        "cache for the first contender that needs them; others' cores: what other processes used meanwhile.",
        "",
    ]
    for name, rec in records.items():
        te = ((rec.get("eval", {}).get("test") or {}).get("metrics")) or None
        if te:
            lines += [f"### {name}: {DESCRIPTION[name]}, test split", "", f"`{rec['train']['command']}`", ""]
            lines += [confusion_md(te, labels)]
    if failed:
        lines += ["### Failed", ""]
        for name, rec in failed:
            lines.append(f"- **{name}**: `{rec['train']['command']}` → `{rec.get('error')}`")
        lines.append("")
    results = {"dataset": ds_name, "data": facts, "contenders": records}
    return "\n".join(lines), results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", action="append", default=[], help="folder:PATH (repeat for more datasets)")
    ap.add_argument(
        "--only", default=",".join(CONTENDERS), help=f"contenders, comma-separated ({','.join(CONTENDERS)})"
    )
    ap.add_argument(
        "--work", type=Path, default=WORK, help="results and runs go under WORK/runs (bench-work/smalldata)"
    )
    ap.add_argument("--cache", type=Path, default=None, help="decoded-audio cache (WORK/cache)")
    ap.add_argument("--splits", default="test,valid", help="splits evaluated (test,valid)")
    ap.add_argument("--loader-workers", type=int, default=1, help="passed to every train command (1)")
    ap.add_argument("--split-seed", type=int, default=0, help="N > 0: --data-option seed=N, dataset <name>-seedN")
    ap.add_argument("--train-arg", action="append", default=[], help="more arguments for every train command")
    ap.add_argument("--fresh", action="store_true", help="redo the named contenders' runs")
    ap.add_argument("--no-resume", action="store_true", help="an interrupted training starts again (default: --resume)")
    ap.add_argument("--re-evaluate", action="store_true", help="evaluate again even where an evaluation exists")
    ap.add_argument("--report-only", action="store_true", help="no training: the reports from the records there")
    a = ap.parse_args()
    a.work = a.work.resolve()
    a.cache = (a.cache or a.work / "cache").resolve()
    a.splits = [s for s in a.splits.split(",") if s]
    only = [c for c in a.only.split(",") if c]
    unknown = [c for c in only if c not in CONTENDERS]
    if unknown:
        ap.error(f"unknown contender(s) {', '.join(unknown)} (have {', '.join(CONTENDERS)})")
    runs = a.work / "runs"
    options = {"seed": a.split_seed} if a.split_seed else {}
    todo = []  # (spec, options, dataset name)
    for data in a.data:
        kind, _, path = data.partition(":")
        if kind != "folder" or not path:
            ap.error(f"--data {data!r}: folder:PATH expected")
        name = Path(path).name + (f"-seed{a.split_seed}" if a.split_seed else "")
        todo.append((f"folder:{Path(path).resolve()}", options, name))
    if a.report_only and not todo:  # every dataset that has records
        for d in sorted(runs.glob("*/dataset.json")):
            j = json.loads(d.read_text())
            todo.append((j["spec"], j.get("options", {}), d.parent.name))
    if not todo:
        ap.error("--data folder:PATH is needed")
    for data, options, ds_name in todo:
        ds_dir = runs / ds_name
        ds_dir.mkdir(parents=True, exist_ok=True)
        (ds_dir / "dataset.json").write_text(json.dumps({"spec": data, "options": options}))
        records = {}
        for name in CONTENDERS:
            rec_path = ds_dir / f"{name}.bench.json"
            if name in only and not a.report_only:
                records[name] = train_contender(name, a, data, ds_dir)
            elif rec_path.exists():
                records[name] = json.loads(rec_path.read_text())
        md, results = report(ds_name, a, data, options, records)
        (ds_dir / "results.json").write_text(json.dumps(results, indent=1))
        (ds_dir / "report.md").write_text(md + "\n")
        print(md, flush=True)
    parts = [p.read_text() for p in sorted(runs.glob("*/report.md"))]
    seeds = seeds_table(runs)
    if seeds:
        print(seeds, flush=True)
    text = "# Issue 14: learning from small labelled data\n\n" + (seeds + "\n" if seeds else "") + "\n".join(parts)
    (a.work / "report.md").write_text(text)
    log(f"reports: {runs}/<dataset>/report.md, {a.work / 'report.md'}")


if __name__ == "__main__":
    main()
