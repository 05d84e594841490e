"""The HTTP API: the results' own JSON, audio by track id with ranges, and hostile requests answered in one line."""

import io
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient

from conftest import SR, finished
from tuneseek import Library
from tuneseek.server.app import create_app
from tuneseek.synth import synth_catalog


@pytest.fixture(scope="module")
def client(tmp_path_factory, music_dir):
    with Library.open(tmp_path_factory.mktemp("served") / "lib") as lib:
        lib.add([music_dir], workers=1, analyse=False)
        labels = ["piano", "rock", "strings"]
        for i, track in enumerate(lib.tracks()):
            lib.set_tags(track, vocabulary="mtt", probs=np.eye(3, dtype=np.float32)[i % 3], labels=labels)
        with TestClient(create_app(lib, max_upload_mb=1.0)) as c:
            yield c


def wav_bytes(audio: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, audio, SR, format="WAV")
    return buf.getvalue()


def a_clip(client, track_id: int, start: float = 5.0, seconds: float = 6.0) -> bytes:
    path = client.get(f"/tracks/{track_id}").json()["path"]
    audio, _ = sf.read(path, dtype="float32")
    return wav_bytes(audio[int(start * SR) : int((start + seconds) * SR)])


def test_an_uploaded_clip_is_identified_with_the_keys_of_the_command_line(client):
    r = client.post("/identify", files={"file": ("clip.wav", a_clip(client, 3), "audio/wav")}, params={"top": 2})
    assert r.status_code == 200
    [best, *_] = r.json()["matches"]
    assert best["track_id"] == 3 and abs(best["offset"] - 5.0) < 0.1
    assert set(best) >= {"track_id", "track", "path", "offset", "track_start", "score", "confidence"}


def test_an_engine_the_library_lacks_is_a_problem_and_an_unknown_one_invalid(client):
    clip = {"file": ("clip.wav", a_clip(client, 3), "audio/wav")}
    assert client.post("/identify", files=clip, params={"engine": "landmarks"}).status_code == 200
    r = client.post("/identify", files=clip, params={"engine": "learned"})
    assert r.status_code == 400 and "needs a learned fingerprint" in r.json()["error"]
    assert client.post("/identify", files=clip, params={"engine": "neural"}).status_code == 422


def test_music_not_in_the_library_gives_an_empty_list(client, stranger):
    r = client.post("/identify", files={"file": ("x.wav", wav_bytes(stranger[: 6 * SR]), "audio/wav")})
    assert r.status_code == 200 and r.json() == {"matches": []}


def test_tracks_stats_and_tags_are_the_results_own_json(client):
    listed = client.get("/tracks", params={"limit": 2}).json()
    assert listed["total"] == 6 and [t["track_id"] for t in listed["tracks"]] == [1, 2]
    one = client.get("/tracks/2").json()
    assert one["track_id"] == 2 and one["extractors"]["landmarks"]
    assert client.get("/stats").json()["tracks"] == 6
    tags = client.get("/tracks/2/tags").json()
    assert tags["mtt"]["tags"] == {"piano": 0.0, "rock": 1.0, "strings": 0.0}


def test_search_ranks_by_the_stored_tags(client):
    r = client.get("/search", params={"q": "rock", "k": 2})
    assert r.status_code == 200 and r.json()["mode"] == "zero-shot"
    assert r.json()["results"][0]["track_id"] in (2, 5)  # the tracks tagged rock


def test_audio_is_served_by_id_with_ranges(client):
    full = client.get("/tracks/1/audio")
    assert full.status_code == 200 and full.headers["content-type"] == "audio/flac"
    assert full.headers["accept-ranges"] == "bytes"
    part = client.get("/tracks/1/audio", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == full.content[100:200]


@pytest.mark.parametrize(
    "url",
    ["/tracks/99", "/tracks/99/audio", "/tracks/99/tags", "/tracks/99/similar"],
)
def test_an_unknown_track_is_a_404_with_one_message(client, url):
    r = client.get(url)
    assert r.status_code == 404 and r.json() == {"error": r.json()["error"]} and "99" in r.json()["error"]


@pytest.mark.parametrize(
    "url",
    [
        "/tracks/..%2F..%2Fetc%2Fpasswd",
        "/tracks/%2Fetc%2Fpasswd/audio",
        "/tracks/1%2F..%2F2/tags",
        "/tracks/-1/audio",
        "/tracks/1/tags/curve?model=..%2F..%2Fetc%2Fpasswd",
        "/map?space=..%2F..%2Fetc%2Fpasswd",
        "/tracks/1/similar?space=%2Fetc%2Fpasswd",
        "/static/..%2F..%2F..%2Fetc%2Fpasswd",
        "/static/%2Fetc%2Fpasswd",
    ],
)
def test_a_path_in_any_parameter_reaches_no_file(client, url):
    r = client.get(url)
    assert r.status_code in (400, 404, 409, 422) and set(r.json()) == {"error"}
    assert b"root:" not in r.content


@pytest.mark.parametrize(
    ("payload", "status", "says"),
    [
        (b"", 400, "empty"),
        (b"this is not audio, whatever its name says" * 10, 415, "not an audio file"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 20, 422, "clip.wav"),  # a WAV header and nothing after
    ],
)
def test_bad_uploads_get_one_clear_error(client, payload, status, says):
    r = client.post("/identify", files={"file": ("clip.wav", payload, "audio/wav")})
    assert r.status_code == status and says in r.json()["error"] and set(r.json()) == {"error"}


def test_a_truncated_upload_is_refused_not_half_read(client):
    whole = a_clip(client, 2)
    r = client.post("/identify", files={"file": ("cut.wav", whole[: len(whole) // 3], "audio/wav")})
    assert r.status_code == 422 and r.json()["error"].startswith("cut.wav: ") and "truncated" in r.json()["error"]


def test_an_upload_over_the_limit_is_a_413(client):
    big = wav_bytes(np.zeros(SR * 30, np.float32))  # 30 s of 16-bit mono: 1.3 MB, over the 1 MB limit
    r = client.post("/identify", files={"file": ("big.wav", big, "audio/wav")})
    assert r.status_code == 413 and "1 MB" in r.json()["error"]


def test_bad_parameters_name_the_parameter(client):
    r = client.get("/search", params={"q": "rock", "k": 0})
    assert r.status_code == 422 and r.json()["error"].startswith("k:")
    r = client.post("/identify")
    assert r.status_code == 422 and "file" in r.json()["error"]


def test_the_openapi_schema_lists_the_endpoints(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/identify", "/search", "/tracks", "/tracks/{track_id}/audio", "/stats"} <= set(paths)
    assert "access-control-allow-origin" not in client.get("/health").headers


def test_a_body_without_a_length_is_cut_off_at_the_limit(client):
    def chunks():
        yield b'--x\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n\r\n'
        for _ in range(40):
            yield b"\x00" * 65536  # 2.6 MB in all, over the 1 MB limit, sent without a Content-Length
        yield b"\r\n--x--\r\n"

    r = client.post("/identify", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"})
    assert r.status_code == 413 and set(r.json()) == {"error"}


KEY = "k" * 24


@pytest.fixture
def writable(tmp_path, music_dir):
    with Library.open(tmp_path / "lib") as lib, TestClient(create_app(lib, max_upload_mb=1.0, api_key=KEY)) as c:
        yield c


def test_writes_need_the_key_and_are_off_without_one(client, writable):
    assert client.post("/tracks", json={"paths": ["/tmp"]}).status_code == 403  # no key configured at all
    assert client.delete("/tracks/1").status_code == 403
    r = writable.post("/tracks", json={"paths": ["/tmp"]})
    assert r.status_code == 401 and "X-API-Key" in r.json()["error"]
    r = writable.delete("/tracks/1", headers={"X-API-Key": "k" * 23 + "x"})
    assert r.status_code == 403 and r.json() == {"error": "wrong API key"}


def test_adding_a_folder_is_a_job_whose_progress_and_report_can_be_read(writable, music_dir):
    r = writable.post("/tracks", json={"paths": [str(music_dir)]}, headers={"X-API-Key": KEY})
    assert r.status_code == 202 and r.json()["state"] in ("queued", "running", "done")
    state = finished(writable, r.json())
    assert state["state"] == "done" and state["done"] == state["total"] == 6
    assert len(state["result"]["added"]) == 6 and writable.get("/stats").json()["tracks"] == 6
    gone = writable.delete("/tracks/6", headers={"X-API-Key": KEY})
    assert gone.status_code == 200 and gone.json()["track_id"] == 6
    assert writable.get("/tracks/6").status_code == 404
    assert writable.get("/jobs/99").status_code == 404


def test_an_uploaded_file_is_kept_under_its_content_and_added(writable, music_dir, tmp_path):
    song = next(music_dir.rglob("*.flac")).read_bytes()
    r = writable.post(
        "/tracks/upload", files={"file": ("../../evil name.flac", song, "audio/flac")}, headers={"X-API-Key": KEY}
    )
    assert r.status_code == 202
    state = finished(writable, r.json())
    [added] = state["result"]["added"]
    assert "evil" not in added["path"] and "/uploads/" in added["path"] and added["path"].endswith(".flac")
    refused = writable.post(
        "/tracks/upload", files={"file": ("x.flac", b"not audio at all" * 4, "audio/flac")}, headers={"X-API-Key": KEY}
    )
    assert refused.status_code == 415
    kept = sorted(p.name for p in (tmp_path / "lib" / "uploads").iterdir())
    assert kept == [Path(added["path"]).name]  # the refused upload left nothing behind


def test_the_server_says_when_it_is_warm(client):
    for _ in range(200):
        r = client.get("/ready")
        if r.status_code == 200:
            break
        assert r.status_code == 503 and "warming up" in r.json()["error"]
        time.sleep(0.05)
    assert r.json() == {"ready": True, "warnings": []}


def test_a_question_the_library_cannot_answer_yet_is_a_409_not_a_404(writable):
    r = writable.get("/search", params={"q": "calm piano"})
    assert r.status_code == 409 and "no track has tags yet" in r.json()["error"]


def test_an_upload_its_job_cannot_add_is_not_kept(writable, tmp_path):
    header_only = wav_bytes(np.zeros(SR * 10, np.float32))[:200]  # sniffs as WAV, holds no audio
    r = writable.post(
        "/tracks/upload", files={"file": ("cut.wav", header_only, "audio/wav")}, headers={"X-API-Key": KEY}
    )
    assert r.status_code == 202
    state = finished(writable, r.json())
    assert state["state"] == "done" and [f["path"] for f in state["result"]["failed"]] != []
    assert list((tmp_path / "lib" / "uploads").iterdir()) == []


def descendants(pid: int) -> list[int]:
    kids = [int(k) for t in Path(f"/proc/{pid}/task").iterdir() for k in (t / "children").read_text().split()]
    return kids + [d for k in kids for d in descendants(k)]


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@pytest.mark.slow
def test_clips_identified_in_worker_processes_answer_as_in_the_server(tmp_path, music_dir):
    with Library.open(tmp_path / "lib") as lib:
        lib.add([music_dir], workers=1, analyse=False)
        with TestClient(create_app(lib, max_upload_mb=1.0, query_workers=1)) as c:
            while c.get("/ready").status_code != 200:
                time.sleep(0.05)
            r = c.post("/identify", files={"file": ("clip.wav", a_clip(c, 4, start=3.0), "audio/wav")})
            assert r.status_code == 200 and r.json()["matches"][0]["track_id"] == 4
            whole = a_clip(c, 2)
            r = c.post("/identify", files={"file": ("cut.wav", whole[: len(whole) // 3], "audio/wav")})
            assert r.status_code == 422 and r.json()["error"].startswith("cut.wav: ")
            [worker] = [pid for pid in descendants(os.getpid()) if parent_of(pid) != os.getpid()][-1:]
            os.kill(worker, signal.SIGKILL)  # a query worker dies (out of memory, say)
            answers = [c.post("/identify", files={"file": ("clip.wav", a_clip(c, 5), "audio/wav")}) for _ in range(2)]
            assert answers[0].status_code in (200, 503) and answers[-1].status_code == 200
            assert answers[-1].json()["matches"][0]["track_id"] == 5


def test_clips_are_identified_while_the_servers_own_job_adds_a_folder(writable, music_dir, tmp_path):
    first, *rest = sorted(music_dir.rglob("*.flac"))
    state = finished(
        writable, writable.post("/tracks", json={"paths": [str(first)]}, headers={"X-API-Key": KEY}).json()
    )
    assert state["state"] == "done"
    more = tmp_path / "more"
    more.mkdir()
    for path in rest:
        (more / path.name).write_bytes(path.read_bytes())
    for t in synth_catalog(8, duration=10.0, sr=SR, seed=4242):
        sf.write(more / f"{t.name}.flac", t.audio, SR)
    job = writable.post("/tracks", json={"paths": [str(more)]}, headers={"X-API-Key": KEY}).json()
    clip = a_clip(writable, 1, start=4.0)
    answered = 0
    while writable.get(f"/jobs/{job['job']}").json()["state"] in ("queued", "running") or answered < 3:
        r = writable.post("/identify", files={"file": ("clip.wav", clip, "audio/wav")})
        assert r.status_code == 200 and r.json()["matches"][0]["track_id"] == 1
        answered += 1
    assert finished(writable, job)["done"] == 13 and writable.get("/stats").json()["tracks"] == 14


def test_the_page_and_every_answer_carry_a_content_security_policy(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for r in (page, client.get("/static/app.js"), client.get("/tracks/99")):
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff"
    assert client.get("/static/../app.py").status_code == 404
