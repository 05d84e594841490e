"""The command line, as a person runs it: real processes, real files, one-line errors."""

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from conftest import SR
from tuneseek import Library
from tuneseek.synth import synth_track


def run(*args, lib=None, check=True, **kw):
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(__file__), "..", "src"))
    if lib is not None:
        env["TUNESEEK_LIBRARY"] = str(lib)
    proc = subprocess.run(
        [sys.executable, "-m", "tuneseek.cli", *map(str, args)], capture_output=True, text=True, env=env, **kw
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def jsonl(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def indexed(tmp_path, music_dir):
    lib = tmp_path / "lib"
    run("index", music_dir, "--workers", "2", lib=lib)
    return lib


def test_index_identify_list_stats_remove_round_trip(indexed, music_dir, tmp_path):
    tracks = jsonl(run("list", "--json", lib=indexed).stdout)
    assert len(tracks) == 6
    src = tracks[3]["path"]
    x, sr = sf.read(src, dtype="float32")
    clip = tmp_path / "clip.wav"
    sf.write(clip, x[int(9.5 * sr) : int(15.5 * sr)], sr)
    out = jsonl(run("identify", "--json", clip, lib=indexed).stdout)[0]
    assert out["match"]["path"] == src and abs(out["match"]["offset"] - 9.5) <= 0.1
    assert {key: tracks[3][key] for key in ("track_id", "track", "path")} == {  # one name for a track everywhere
        key: out["match"][key] for key in ("track_id", "track", "path")
    }
    human = run("identify", clip, lib=indexed).stdout
    assert "at 0:09" in human and "score" in human

    stats = jsonl(run("stats", "--json", lib=indexed).stdout)[0]
    assert stats["tracks"] == 6 and stats["index_bytes"] > 0

    shown = jsonl(run("show", "--json", tracks[3]["track_id"], lib=indexed).stdout)[0]
    assert {key: shown[key] for key in tracks[3]} == tracks[3]  # list's keys, and what show adds
    assert shown["tags"] == {} and "landmarks" in shown["extractors"]
    assert jsonl(run("remove", "--json", tracks[3]["track_id"], lib=indexed).stdout) == [tracks[3]]
    assert jsonl(run("identify", "--json", clip, lib=indexed).stdout)[0]["match"] is None
    assert "no match" in run("identify", clip, lib=indexed).stdout


def test_identify_reports_each_bad_clip_on_one_line_and_goes_on(indexed, tmp_path, music_dir):
    good = tmp_path / "good.wav"
    x, sr = sf.read(sorted(music_dir.rglob("*.flac"))[0], dtype="float32")
    sf.write(good, x[: 5 * sr], sr)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    short = tmp_path / "short.wav"
    sf.write(short, x[: sr // 2], sr)
    proc = run("identify", empty, short, good, tmp_path / "missing.mp3", lib=indexed, check=False)
    assert proc.returncode == 1
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == 3 and all(line.startswith("tuneseek: error: ") for line in errors)
    assert "empty.wav: empty file" in errors[0]
    assert "short.wav: too short" in errors[1]
    assert "missing.mp3: no such file" in errors[2]
    assert "good.wav:" in proc.stdout and "Traceback" not in proc.stderr


def test_index_skips_bad_files_with_a_summary(tmp_path, music_dir):
    bad = tmp_path / "in"
    bad.mkdir()
    (bad / "broken.ogg").write_bytes(b"OggS" + os.urandom(2000))
    sf.write(bad / "ok.wav", sf.read(sorted(music_dir.rglob("*.flac"))[0])[0], SR)
    proc = run("index", bad, lib=tmp_path / "lib", check=False)
    assert proc.returncode == 0
    assert "broken.ogg" in proc.stderr and "Traceback" not in proc.stderr
    assert "1 added, 1 failed" in proc.stdout
    again = jsonl(run("index", "--json", bad, lib=tmp_path / "lib").stdout)  # the AddReport, as one object
    assert len(again) == 1 and again[0]["added"] == [] and again[0]["unchanged"][0].endswith("ok.wav")
    assert again[0]["failed"][0]["path"].endswith("broken.ogg") and again[0]["failed"][0]["reason"]


def test_errors_about_the_library_are_one_line(tmp_path):
    proc = run("list", lib=tmp_path / "nowhere", check=False)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "no library here" in proc.stderr
    (tmp_path / "file").write_text("x")
    proc = run("stats", lib=tmp_path / "file", check=False)
    assert proc.returncode == 1 and "is a file" in proc.stderr


@pytest.mark.slow
def test_make_queries_then_evaluate_identify_scores_the_dataset(tmp_path, music_dir):
    out = tmp_path / "ds"
    made = jsonl(
        run(
            "make-queries",
            music_dir,
            out,
            "--length",
            "5",
            "--per-track",
            "2",
            "--holdout",
            "1",
            "--degrade",
            "noise:10db",
            "--json",
        ).stdout
    )[0]
    assert made["samples"] == 12 and made["not_in_library"] == 2
    report = jsonl(run("evaluate", "identify", out, "--json").stdout)[0]
    assert report["queries"] == 12 and report["in_library"] == 10
    assert report["top1"] >= 0.9 and report["offset_within_0.5s"] >= 0.9
    assert report["false_positive_rate"] == 0.0
    assert report["latency_ms_median"] > 0


def test_make_queries_rejects_a_bad_degradation_spec(tmp_path, music_dir):
    proc = run("make-queries", music_dir, tmp_path / "q", "--degrade", "noise:loud", check=False)
    assert proc.returncode == 1 and "noise" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_killed_indexer_leaves_a_library_that_answers_for_what_it_committed(tmp_path, music_dir):
    many = tmp_path / "many"
    many.mkdir()
    n = 150
    for i in range(n):
        sf.write(many / f"t{i:03d}.flac", synth_track(100 + i, duration=6.0, sr=SR), SR)
    lib = tmp_path / "lib"
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(__file__), "..", "src"), TUNESEEK_LIBRARY=str(lib))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuneseek.cli", "index", str(many), "--workers", "1", "--commit-every", "0.05"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    while time.time() < deadline:  # wait for a first commit, then kill mid-run
        if (lib / "tuneseek.json").exists():
            with Library.open(lib) as peek:
                if peek.tracks():
                    break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with Library.open(lib) as after:
        kept = after.tracks()
        assert 0 < len(kept) < n
        for track in kept[:: max(1, len(kept) // 4)]:
            x, sr = sf.read(track.path, dtype="float32")
            assert after.identify(x[2 * sr : 6 * sr], sr=sr).track.id == track.id
    run("index", many, "--workers", "2", lib=lib)
    with Library.open(lib) as done:
        assert len(done.tracks()) == n


@pytest.mark.slow
def test_demo_runs_on_a_bare_install_and_prints_its_table():
    proc = run("demo", "--length", "6")
    assert "top-1" in proc.stdout and "clean" in proc.stdout and "not in the library" in proc.stdout
    assert "false positives: 0" in proc.stdout


@pytest.mark.slow
def test_demo_on_a_folder_leaves_out_tracks_the_library_refuses(tmp_path, music_dir):
    from tuneseek.demo import run_demo

    folder = tmp_path / "music"
    shutil.copytree(music_dir, folder)
    sf.write(folder / "silence.wav", np.zeros(SR * 20, np.float32), SR)
    said = []
    result = run_demo(folder, held_out=1, clip=5.0, per_track=1, workers=1, say=said.append)
    assert any("left out" in line and "silence.wav" in line and "silent" in line for line in said)
    assert result.tracks == 5  # 7 files, one held out, the silent one left out
    clean = dict(result.rows)["clean"].metrics
    assert clean["in_library"] == 5 and clean["top1"] == 1.0 and clean["errors"] == 0


@pytest.mark.slow
def test_evaluate_identify_leaves_out_clips_of_tracks_the_indexer_refused(tmp_path, music_dir):
    src = tmp_path / "src"
    shutil.copytree(music_dir, src)
    out = tmp_path / "ds"
    run("make-queries", src, out, "--length", "4", "--per-track", "1")
    # an origin the indexer will refuse, put into the dataset by hand (make-queries itself skips silent files)
    (out / "test" / "origin" / "silence").mkdir()
    (out / "test" / "sample" / "silence").mkdir()
    sf.write(out / "test" / "origin" / "silence" / "silence.wav", np.zeros(SR * 20, np.float32), SR)
    sf.write(out / "test" / "sample" / "silence" / "silence_1000_5000.wav", np.zeros(SR * 4, np.float32), SR)
    report = jsonl(run("evaluate", "identify", out, "--json").stdout)[0]
    assert report["origin_not_indexed"] == 1 and report["in_library"] == 6
    assert report["top1"] == 1.0 and report["errors"] == 0
    human = run("evaluate", "identify", out).stdout
    assert "left out             1 clips of tracks the library refused" in human


def test_evaluate_is_one_verb_for_query_sets_and_models(tmp_path):
    proc = run("evaluate", "model", tmp_path / "no-run", check=False)
    assert proc.returncode == 1 and proc.stderr.startswith("tuneseek: error: ") and proc.stderr.count("\n") == 1
    assert "no such checkpoint folder" in proc.stderr
    proc = run("eval", "identify", tmp_path, check=False)  # the form before `evaluate identify|model`
    assert proc.returncode == 2 and "invalid choice" in proc.stderr and "Traceback" not in proc.stderr
    proc = run("evaluate", tmp_path, check=False)  # a run folder alone: short for `evaluate model RUN`
    assert proc.returncode == 1 and "not a checkpoint: config.json is missing" in proc.stderr
    assert proc.stderr.count("\n") == 1


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize(
    "how, says",
    [(["--workers", "1"], "1 query worker;"), (["--shards", "2"], "the landmark index in 2 shards on Ray;")],
    ids=["query workers", "shards"],
)
def test_serve_answers_and_stops_on_sigterm_leaving_no_process(indexed, music_dir, tmp_path, how, says):
    httpx = pytest.importorskip("httpx")
    if "--shards" in how:
        pytest.importorskip("ray", reason="shards need Ray (pip install 'tuneseek[scale]')")
    port = free_port()
    env = dict(os.environ, TUNESEEK_LIBRARY=str(indexed))
    server = subprocess.Popen(
        [sys.executable, "-m", "tuneseek.cli", "serve", "--port", str(port), *how],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/ready").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        song = next(music_dir.rglob("*.flac"))
        audio, _ = sf.read(song, dtype="float32")
        sf.write(tmp_path / "clip.wav", audio[4 * SR : 10 * SR], SR)
        r = httpx.post(f"{url}/identify", files={"file": ("clip.wav", (tmp_path / "clip.wav").read_bytes())})
        assert r.status_code == 200 and r.json()["matches"][0]["path"] == str(song)
        assert "<html" in httpx.get(url).text.lower()
        shards = httpx.get(f"{url}/stats").json().get("shards", [])
        assert len(shards) == (2 if "--shards" in how else 0) and sum(s["tracks"] for s in shards) in (0, 6)
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=30)
    # uvicorn re-raises the signal once it has shut down; with shards, to Ray's handler, which exits with its number
    assert server.returncode in (0, -signal.SIGTERM, signal.SIGTERM), err
    assert says in out and "Traceback" not in err
    for _ in range(100):  # the query workers and their fork server, or Ray and its shards, end with the server
        left = subprocess.run(["pgrep", "-a", "-s", str(server.pid)], capture_output=True, text=True).stdout
        if not left:
            break
        time.sleep(0.1)
    assert left == ""


def test_serve_refuses_bad_settings_in_one_line(tmp_path):
    for args, says in [
        (["--workers", "-1"], "--workers must be 0 or more"),
        (["--shards", "-2"], "--shards must be 0 or more"),
        (["--ray", "auto"], "--ray places shards: give --shards N too"),
        (["--max-upload-mb", "0"], "--max-upload-mb must be positive"),
        (["--api-key-file", str(tmp_path / "nope.txt")], "cannot read the API key"),
        (["--tls-cert", str(tmp_path / "lib")], "needs both --tls-cert and --tls-key"),
        (["--tls-cert", __file__, "--tls-key", __file__], "not a usable certificate and key"),
    ]:
        proc = run("serve", *args, lib=tmp_path / "lib", check=False)
        assert proc.returncode != 0 and says in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a certificate")
def test_serve_over_https_with_a_certificate(indexed, tmp_path):
    httpx = pytest.importorskip("httpx")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"]
        + ["-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tuneseek.cli", "serve", "--port", str(port), "--workers", "0"]
        + ["--tls-cert", str(cert), "--tls-key", str(key)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, TUNESEEK_LIBRARY=str(indexed)),
    )
    trusted = ssl.create_default_context(cafile=str(cert))
    r = None
    try:
        for _ in range(300):
            try:
                r = httpx.get(f"https://127.0.0.1:{port}/health", verify=trusted)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert r is not None and r.status_code == 200 and r.json()["tracks"] == 6
    finally:
        server.send_signal(signal.SIGTERM)
        out, _ = server.communicate(timeout=30)
    assert f"https://127.0.0.1:{port}" in out
