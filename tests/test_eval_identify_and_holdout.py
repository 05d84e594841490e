"""``evaluate identify`` says why each failed query failed; ``make-queries`` never picks a silent track."""

import json

import numpy as np
import soundfile as sf

from conftest import SR
from tuneseek.cli import main
from tuneseek.data.querysets import make_queries
from tuneseek.synth import synth_catalog


def test_eval_identify_lists_each_failed_query_with_its_reason(tmp_path, music_dir, capsys):
    qs = make_queries(music_dir, tmp_path / "ds", length=5.0, per_track=1, seed=2)
    broken, short = qs.samples[0].path, qs.samples[1].path
    broken.write_bytes(b"RIFF not really a wave file")
    x, sr = sf.read(short, dtype="float32")
    sf.write(short, x[: sr // 2], sr)  # half a second: too short to identify

    assert main(["evaluate", "identify", str(tmp_path / "ds")]) == 0
    out = capsys.readouterr().out
    assert "errors               2 (could not be identified)" in out
    lines = {
        line.strip().split(": ", 1)[0]: line.strip().split(": ", 1)[1]
        for line in out.splitlines()
        if line.startswith(f"  {tmp_path}")
    }
    assert set(lines) == {str(broken), str(short)}
    assert all(reason and str(tmp_path) not in reason for reason in lines.values())  # the reason, not the path again

    assert main(["evaluate", "identify", "--json", str(tmp_path / "ds")]) == 0
    metrics = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert metrics["errors"] == 2
    assert {f["sample"]: f["error"] for f in metrics["failed"]} == lines


def test_make_queries_holds_out_and_links_only_tracks_with_something_to_fingerprint(tmp_path):
    music = tmp_path / "music"
    music.mkdir()
    for track in synth_catalog(3, duration=12.0, sr=SR, seed=4):
        sf.write(music / f"{track.name}.flac", track.audio, SR)
    sf.write(music / "silence.flac", np.zeros(12 * SR, np.float32), SR)
    sf.write(music / "hum.flac", np.full(12 * SR, 1e-7, np.float32), SR)  # nothing above the noise floor

    for seed in range(8):  # with 5 candidates and 1 held out, some seed would pick a silent one
        qs = make_queries(music, tmp_path / f"qs{seed}", length=4.0, per_track=1, holdout=1, seed=seed)
        picked = {s.label for s in qs.samples}
        assert not any("silence" in label or "hum" in label for label in picked)
        assert len(qs.negatives) == 1 and len(qs.labels) == 2
        reasons = {name.rsplit("/", 1)[-1]: reason for name, reason in qs.skipped}
        assert set(reasons) == {"silence.flac", "hum.flac"}
        assert all(reason.startswith("silent") for reason in reasons.values())
