"""A probe: a regularised linear classifier on frozen, pooled features, trained in seconds.

For a few hundred labelled clips this is the field's answer (transfer from a pretrained
network): the pretrained musicnn networks and the rhythm/timbre descriptors describe each clip
once (:mod:`tuneseek.embed.pooled`: per-window outputs, pooled over time by mean, std, max and
quantiles), and a standardised logistic regression is fitted on the training split:

* single-label data: multinomial logistic regression, the regularisation ``C`` chosen by
  cross-validation on the training split only, in folds by group (stratified by label:
  ``StratifiedGroupKFold``) so that excerpts of one song never sit on both sides of a fold, scored by
  balanced accuracy;
* multi-label data (tags): one logistic regression per tag, ``C`` chosen the same way (folds by group),
  scored by macro ROC-AUC.

The chosen model is refitted on the whole training split; the valid split is scored once, for the
summary, never used to choose. The run folder is like every other run's (:mod:`tuneseek.train.run`):
a checkpoint whose model is a :class:`~tuneseek.models.probe.ProbeHead` (the scaler and the
regression's numbers), ``summary.json`` and ``training-curves.png`` (here: the cross-validated score
for each ``C``), so that ``tag --model``, ``index --tagger`` and ``evaluate model`` take it.

The window matrices of every item are cached on disk (``CACHE/windows/<part version>/``), so a
second probe on the same data (other groups, other statistics) costs the fit alone.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tuneseek import analysis, audio, plots, processes
from tuneseek.data.datasets import Dataset, Item, open_dataset
from tuneseek.embed.pooled import DEFAULT_GROUPS, DEFAULT_STATS, PARTS, FeatureSpec, WindowStream, pool
from tuneseek.errors import TuneseekError, UsageError
from tuneseek.features import MUSICNN_SR
from tuneseek.fileio import atomic_write_bytes
from tuneseek.models import checkpoint
from tuneseek.models.probe import ProbeHead
from tuneseek.train import metrics, require_training_stack
from tuneseek.train.run import default_cache, prepare_out

__all__ = ["ProbeSettings", "train_probe", "dataset_vectors", "dataset_windows", "windows_cache"]

#: The regularisation strengths tried (inverse of the L2 penalty on standardised features).
C_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)
SILENCE = 1e-4


@dataclass
class ProbeSettings:
    """Everything a probe run depends on (stored in its summary)."""

    data: str  # dataset spec, e.g. "folder:~/labelled"
    out: str
    groups: tuple[str, ...] = DEFAULT_GROUPS
    stats: tuple[str, ...] = DEFAULT_STATS
    data_options: dict = field(default_factory=dict)
    folds: int = 5  # cross-validation folds on the training split (fewer when there are fewer groups)
    cs: tuple[float, ...] = C_GRID
    seed: int = 0
    workers: int = 2  # processes describing the audio, and fitting the folds
    cache: str | None = None  # the audio cache folder; windows are kept in CACHE/windows


def windows_cache(cache: str | Path | None) -> Path:
    """Where window matrices are kept: beside the decoded audio, in ``windows/``."""
    return (Path(cache).expanduser() if cache else default_cache()) / "windows"


def _window_file(root: Path, item: Item, part: str) -> Path:
    """Where ``item``'s ``part`` is cached: named by the file's real path (a dataset reached through a link
    shares it), size and modification time (a file changed in place is described again)."""
    path = os.path.realpath(item.path)
    try:
        st = os.stat(path)
        stamp = f"{st.st_size}|{st.st_mtime_ns}"
    except OSError:
        stamp = "missing"
    key = hashlib.sha1(f"{path}|{stamp}".encode()).hexdigest()[:20]
    return root / PARTS[part] / f"{key}.npy"


def _describe_item(job: tuple[str, tuple[str, ...], tuple[str, ...]]) -> str | None:
    """Compute the window matrices of one file into their cache files; ``None`` when done, else why it cannot."""
    path, parts, targets = job
    analysis.use_cores()  # once per process: one thread per idle core (two threads on a busy machine run 2-3x slower)
    try:
        stream = WindowStream(parts)
        loud = False
        for chunk in audio.stream(path, MUSICNN_SR):
            loud = loud or bool(np.any(np.abs(chunk) > SILENCE))
            stream.feed(chunk)
        if not loud:
            return "silent"
        windows = stream.finish()
    except TuneseekError as e:
        return getattr(e, "reason", str(e))
    except Exception as e:  # a decoder bug costs one file, never the run
        return f"unexpected {type(e).__name__}: {e}"
    if windows is None:
        return f"{stream.samples / MUSICNN_SR:.2f} s long: shorter than the 3 s a probe needs"
    for part, target in zip(parts, targets):
        buf = io.BytesIO()
        np.save(buf, windows[part])
        atomic_write_bytes(Path(target), buf.getvalue())
    return None


def dataset_windows(
    items: Sequence[Item],
    parts: Sequence[str],
    *,
    cache: str | Path | None = None,
    workers: int = 1,
    executor: Executor | None = None,
) -> tuple[list[dict[str, np.ndarray]], list[int], list[tuple[Item, str]]]:
    """The window matrices (:data:`~tuneseek.embed.pooled.PARTS`) of ``items``: ``([{part: (windows, columns)}]
    of the kept items, their indices, failures)``.

    Matrices missing from the cache are computed by ``workers`` processes (or ``executor``); a file
    that cannot be described is left out with its reason.
    """
    root = windows_cache(cache)
    todo, where = [], []
    for item in items:
        files = {part: _window_file(root, item, part) for part in parts}
        where.append(files)
        missing = tuple(p for p, f in files.items() if not f.exists())
        if missing:
            todo.append((item, (str(item.path), missing, tuple(str(files[p]) for p in missing))))
    for part in parts:
        (root / PARTS[part]).mkdir(parents=True, exist_ok=True)
    reasons = processes.in_order(
        _describe_item, [job for _, job in todo], workers=workers, executor=executor, preload=[__name__]
    )
    failed = [(item, reason) for (item, _), reason in zip(todo, reasons) if reason]
    bad = {id(item) for item, _ in failed}
    kept = [i for i, item in enumerate(items) if id(item) not in bad]
    windows = [{part: np.load(path, allow_pickle=False) for part, path in where[i].items()} for i in kept]
    return windows, kept, failed


def dataset_vectors(
    items: Sequence[Item],
    spec: FeatureSpec,
    *,
    cache: str | Path | None = None,
    workers: int = 1,
    executor: Executor | None = None,
) -> tuple[np.ndarray, list[int], list[tuple[Item, str]]]:
    """The pooled vectors of ``items``: ``(vectors (kept, spec.size), indices of the kept items, failures)``
    (see :func:`dataset_windows`)."""
    windows, kept, failed = dataset_windows(items, spec.parts, cache=cache, workers=workers, executor=executor)
    vectors = np.stack([pool(w, spec) for w in windows]) if windows else np.zeros((0, spec.size), np.float32)
    return vectors, kept, failed


class RowSpace:
    """Project standardised features onto the span of the training rows (an SVD), before the regression.

    Exact, not an approximation: the L2-regularised regression's weights always lie in the span of its
    training rows (any part outside it changes no training logit and only adds to the penalty), so the
    regression on the ``n`` coordinates in that span, with the same ``C``, has the same optimum, and its
    weights map back by the basis (:func:`_head`). With ``n`` a few hundred clips and ``d`` some 12 000
    features, each fit is then about ``d / n`` = 30 times cheaper (measured: the fit of a probe on 404 clips
    went from 448 s to 49 s on a busy 2-core machine, with the same cross-validated scores).
    """

    def fit(self, x, y=None):
        _, singular, vt = np.linalg.svd(np.asarray(x, np.float64), full_matrices=False)
        self.basis_ = vt[singular > singular.max(initial=0.0) * 1e-10]
        return self

    def transform(self, x):
        return np.asarray(x, np.float64) @ self.basis_.T

    def fit_transform(self, x, y=None):
        return self.fit(x).transform(x)

    def get_params(self, deep: bool = True) -> dict:
        return {}

    def set_params(self, **params):
        return self


def _macro_auc(estimator, x, y) -> float:
    """Macro ROC-AUC of a fold's tags that have both classes (chance when none has)."""
    value = metrics.tagging(y, estimator.predict_proba(x), labels=[str(j) for j in range(y.shape[1])])["roc_auc"]
    return value if np.isfinite(value) else 0.5


def _fit(x: np.ndarray, y: np.ndarray, groups: np.ndarray, *, task: str, s: ProbeSettings):
    """Cross-validate ``C`` on the training split by group, refit the best: ``(pipeline, {C: mean score}, C, folds)``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, GroupKFold, StratifiedGroupKFold
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    cs = sorted(set(s.cs))  # strong to weak regularisation, as the choice reads them
    n_groups = len(set(groups.tolist()))
    folds = max(2, min(s.folds, n_groups))
    if n_groups < 2:
        raise UsageError("cross-validation needs training items of two groups (songs) at least")
    regression = LogisticRegression(max_iter=3000)
    if task == "single-label":
        model, key, scoring = regression, "clf__C", "balanced_accuracy"
        counts = np.bincount(y)
        smallest = int(counts[counts > 0].min())
        if smallest >= 2:  # stratifying needs each class in every fold at least once
            folds = min(folds, smallest)
            splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=s.seed)
        else:
            splitter = GroupKFold(n_splits=folds)
    else:
        model, key, scoring = OneVsRestClassifier(regression), "clf__estimator__C", _macro_auc
        splitter = GroupKFold(n_splits=folds)
    cached = tempfile.TemporaryDirectory(prefix="tuneseek-probe-")  # each fold's scaler and basis, once for all C
    search = GridSearchCV(
        Pipeline([("scale", StandardScaler()), ("span", RowSpace()), ("clf", model)], memory=cached.name),
        {key: cs},
        scoring=scoring,
        cv=splitter,
        n_jobs=max(1, s.workers),
        refit=_one_standard_error,
        error_score=np.nan,
    )
    # BLAS threads as many as torch's (one per idle core): two on a busy 2-core machine run the SVDs far slower
    with cached, threadpool_limits(limits=analysis.use_cores(), user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a class absent from one fold, or slow convergence at a weak penalty
        search.fit(x, y, groups=groups)
    scores = {float(c): float(v) for c, v in zip(cs, search.cv_results_["mean_test_score"])}
    return search.best_estimator_, scores, float(cs[search.best_index_]), folds


def _one_standard_error(results: dict) -> int:
    """The strongest regularisation whose cross-validated score is within one standard error of the best.

    The curve of score against ``C`` is often flat at the top on a few hundred clips: the plain maximum
    then picks by the noise of the folds (two fits whose scores differ in the third decimal chose ``C``
    0.01 and 0.3); the simplest model the folds cannot tell from the best is a steadier choice
    (Hastie, Tibshirani and Friedman's "one-standard-error rule").
    """
    mean = np.nan_to_num(np.asarray(results["mean_test_score"], float), nan=-np.inf)
    folds = sum(1 for key in results if key.startswith("split") and key.endswith("_test_score"))
    best = int(np.argmax(mean))
    threshold = mean[best] - float(results["std_test_score"][best]) / np.sqrt(max(1, folds))
    return int(np.flatnonzero(mean >= threshold)[0])  # the grid runs from strong to weak regularisation


def _head(pipeline, *, task: str, n_labels: int) -> ProbeHead:
    """The fitted scaler and regression as a :class:`ProbeHead` (the same logits, without scikit-learn)."""
    scaler, basis, clf = (pipeline.named_steps[k] for k in ("scale", "span", "clf"))
    k = len(basis.basis_)
    if task == "single-label":
        w, b = clf.coef_, clf.intercept_
        if w.shape[0] == 1:  # two classes: one logit z, i.e. softmax of (-z/2, z/2)
            w, b = np.concatenate([-w / 2, w / 2]), np.concatenate([-b / 2, b / 2])
    else:
        w, b = np.zeros((n_labels, k)), np.zeros(n_labels)
        for j, est in enumerate(clf.estimators_):
            if hasattr(est, "coef_"):
                w[j], b[j] = est.coef_[0], est.intercept_[0]
            else:  # a tag with one class in training: a constant
                p = float(np.clip(np.ravel(est.predict_proba(np.zeros((1, k))))[-1], 1e-4, 1 - 1e-4))
                b[j] = np.log(p / (1 - p))
    w = w @ basis.basis_  # back from the rows' span to the d standardised features
    head = ProbeHead(len(scaler.mean_), n_labels)
    head.set_weights(mean=scaler.mean_, scale=scaler.scale_, layers=[(w, b)])
    return head.eval()


def _score(head: ProbeHead, x: np.ndarray, y: np.ndarray, *, task: str, labels: list[str]) -> dict:
    import torch

    with torch.inference_mode():
        logits = head(torch.from_numpy(x))
        probs = (torch.sigmoid(logits) if task == "multi-label" else torch.softmax(logits, dim=1)).numpy()
    return (metrics.tagging if task == "multi-label" else metrics.classification)(y, probs, labels=labels)


def train_probe(s: ProbeSettings, *, say: Callable[[str], None] = print, executor: Executor | None = None) -> dict:
    """Describe the dataset's train and valid items, fit the probe, write the run folder; returns the summary."""
    require_training_stack()
    started = time.time()
    spec = FeatureSpec(groups=tuple(s.groups), stats=tuple(s.stats))
    out = prepare_out(s.out, resume=False)
    ds: Dataset = open_dataset(s.data, **s.data_options)
    if ds.task == "unlabelled":
        raise UsageError(f"{s.data} has no labels: a probe needs one folder per label (or a tagged dataset)")
    say(ds.describe())
    say(f"describing {sum(len(ds.splits[n]) for n in ('train', 'valid'))} items: {spec.version} ({spec.size} numbers)")
    data, left_out = {}, []
    for name in ("train", "valid"):
        items = ds.splits[name]
        x, kept, failed = dataset_vectors(items, spec, cache=s.cache, workers=s.workers, executor=executor)
        left_out += [(str(item.path), reason) for item, reason in failed]
        data[name] = (x, ds.targets(name)[kept], np.array([items[i].group or items[i].key for i in kept]))
    for path, reason in left_out:
        say(f"left out {path}: {reason}")
    if not len(data["train"][0]) or not len(data["valid"][0]):
        raise UsageError("no usable audio left in the train or valid split")
    x, y, groups = data["train"]
    say(f"choosing the regularisation by {s.folds}-fold cross-validation on the training split, by group")
    pipeline, scores, chosen, folds = _fit(x, y, groups, task=ds.task, s=s)
    head = _head(pipeline, task=ds.task, n_labels=len(ds.labels))
    labels = list(ds.labels)
    valid = _score(head, data["valid"][0], data["valid"][1], task=ds.task, labels=labels)
    monitor = "val_roc_auc" if ds.task == "multi-label" else "val_balanced_accuracy"
    best = valid["roc_auc"] if ds.task == "multi-label" else valid["balanced_accuracy"]
    summary = {
        "kind": "probe",
        "task": ds.task,
        "settings": asdict(s),
        "features": spec.to_dict(),
        "dataset": ds.summary(),
        "cross_validation": {"folds": folds, "scores": {f"{c:g}": v for c, v in scores.items()}, "chosen_C": chosen},
        "monitor": monitor,
        "best": best,
        "valid": valid,
        "epochs_run": 0,
        "best_epoch": None,
        "left_out": [{"path": p, "reason": r} for p, r in left_out],
        "seconds": round(time.time() - started, 1),
    }
    extra = {
        "labels": labels,
        "task": ds.task,
        "features": spec.to_dict(),
        "data": {"spec": s.data, "options": s.data_options, "features": None},
        "training": {"monitor": monitor, "best": best, "chosen_C": chosen},
    }
    checkpoint.save(out, head, extra=extra)
    atomic_write_bytes(out / "summary.json", (json.dumps(summary, indent=2) + "\n").encode())
    plots.cross_validation(scores, chosen, out / "training-curves.png", metric="CV " + monitor.removeprefix("val_"))
    return summary
