"""Which code a benchmark measured, and a snapshot of it to measure while src/ keeps changing.

``snapshot_and_reexec`` copies ``src/tuneseek`` (of the working tree, or of a git revision)
to ``WORK/snapshot/<name>/`` and runs the calling script again on that copy through
``PYTHONPATH``; the re-run reads its record back with ``code_version(env_var)``. Shared by
``identify.py`` and ``identify_trust.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def tree_sha(root: Path) -> str:
    """Hash of the .py files under ``root/src`` (names and bytes, in name order)."""
    h = hashlib.sha1()
    for p in sorted((root / "src").rglob("*.py")):
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


def code_version(env_var: str) -> dict:
    """git HEAD, whether src/ differs from it (and which files), and a hash of src/.

    Under a snapshot (``env_var`` set by :func:`snapshot_and_reexec`) this is the snapshot's
    record, whatever src/ holds by now.
    """
    if env := os.environ.get(env_var):
        return json.loads(env)
    out = {"head": None, "src_dirty": None, "src_sha": tree_sha(REPO), "snapshot": None, "src_changed": []}
    try:
        out["head"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        st = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout
        out["src_dirty"] = bool(st.strip())
        out["src_changed"] = [ln[3:] for ln in st.splitlines()]
    except (OSError, subprocess.CalledProcessError):
        pass
    return out


def snapshot_and_reexec(
    work: Path, script: str, argv: list[str], rev: str | None, env_var: str, log: Callable[[str], None]
) -> None:
    """Copy src/tuneseek (working tree, or git revision ``rev``) to WORK/snapshot/<name>/ and run
    ``script`` again on that copy with ``argv``; does not return."""
    code = code_version(env_var)
    if rev is None:
        name = code["src_sha"]
    else:
        try:
            short = subprocess.run(
                ["git", "rev-parse", "--short", f"{rev}^{{commit}}"],
                cwd=REPO,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        except subprocess.CalledProcessError:
            raise SystemExit(f"--git-rev {rev}: not a commit of this repository") from None
        code = {"head": short, "src_dirty": False, "src_sha": None, "git_rev": rev, "src_changed": []}
        name = f"git-{short}"
    snap = make_snapshot(work, name, None if rev is None else code["head"])
    if rev is not None:
        code["src_sha"] = (snap / "src_sha").read_text().strip()
    code["snapshot"] = str(snap)
    env = dict(
        os.environ,
        **{env_var: json.dumps(code)},
        PYTHONPATH=os.pathsep.join([str(snap)] + [p for p in [os.environ.get("PYTHONPATH")] if p]),
    )
    log(
        f"running on a snapshot of src/ (hash {code['src_sha']}, git {code['head']}"
        f"{' + uncommitted changes' if code.get('src_dirty') else ''}) in {snap}"
    )
    os.execve(sys.executable, [sys.executable, str(Path(script).resolve()), *argv], env)


def make_snapshot(work: Path, name: str, commit: str | None) -> Path:
    """``WORK/snapshot/<name>/tuneseek``: src/tuneseek of the working tree (``commit`` None) or of ``commit``,
    made once (kept for later runs); returns the folder to put on ``PYTHONPATH``."""
    snap = work / "snapshot" / name
    if not (snap / "tuneseek").exists():
        tmp = work / "snapshot" / f".tmp-{name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        if commit is None:
            shutil.copytree(
                REPO / "src" / "tuneseek", tmp / "tuneseek", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
            diff = subprocess.run(["git", "diff", "HEAD", "--", "src"], cwd=REPO, capture_output=True, text=True).stdout
            (tmp / "src.diff").write_text(diff)
        else:
            tree = tmp / "tree"
            tree.mkdir(parents=True)
            arch = subprocess.run(["git", "archive", commit, "src"], cwd=REPO, capture_output=True, check=True)
            subprocess.run(["tar", "-x", "-C", str(tree)], input=arch.stdout, check=True)
            (tmp / "src_sha").write_text(tree_sha(tree))
            (tree / "src" / "tuneseek").rename(tmp / "tuneseek")
            shutil.rmtree(tree)
        try:
            os.replace(tmp, snap)
        except OSError:  # made meanwhile by another run
            shutil.rmtree(tmp, ignore_errors=True)
    return snap
