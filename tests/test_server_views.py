"""The HTTP endpoints behind the web page's views: the map, tags over time, similar to a clip,
monitoring a long recording as a job, and the library list's filter."""

import io
import os
import tempfile

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient

from conftest import SR, finished
from tuneseek import Library
from tuneseek.server.app import create_app


@pytest.fixture(scope="module")
def analysed(tmp_path_factory, music_dir, models):
    """A server over a library whose tracks have (stand-in) musicnn tags and embeddings."""
    with Library.open(tmp_path_factory.mktemp("served") / "lib") as lib:
        lib.add([music_dir], workers=1)
        with TestClient(create_app(lib, max_upload_mb=5.0)) as c:
            yield c


def wav(audio: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, audio, SR, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def track_samples(client, track_id: int) -> np.ndarray:
    return sf.read(client.get(f"/tracks/{track_id}").json()["path"], dtype="float32")[0]


def uploads_left() -> set[str]:
    return {n for n in os.listdir(tempfile.gettempdir()) if n.startswith("tuneseek-upload-")}


def test_the_map_places_every_embedded_track_once(analysed):
    r = analysed.get("/map")
    assert r.status_code == 200
    body = r.json()
    assert body["space"] == "musicnn" and body["method"] == "pca"
    assert sorted(p["track_id"] for p in body["points"]) == [1, 2, 3, 4, 5, 6]
    xy = np.array([[p["x"], p["y"]] for p in body["points"]])
    assert np.isfinite(xy).all() and xy.std(axis=0).min() > 0  # spread on both axes, not a dot
    assert analysed.get("/map").json() == body  # the same library draws the same map
    assert analysed.get("/map", params={"space": "nope"}).status_code == 400


def test_the_tag_curve_has_a_value_per_window_for_every_tag(analysed):
    r = analysed.get("/tracks/2/tags/curve", params={"model": "mtt"})
    assert r.status_code == 200
    body = r.json()
    assert body["model"] == "mtt" and len(body["times"]) >= 5  # a 20 s track in 3 s windows
    assert set(body["curve"]) == set(body["tags"]) and len(body["tags"]) == 50
    assert all(len(values) == len(body["times"]) for values in body["curve"].values())
    assert analysed.get("/tracks/2/tags/curve", params={"model": "../x"}).status_code == 422
    assert analysed.get("/tracks/99/tags/curve").status_code == 404


def test_similar_to_an_uploaded_clip_says_where_each_track_matches(analysed):
    clip = track_samples(analysed, 3)[5 * SR : 11 * SR]
    before = uploads_left()
    r = analysed.post("/similar", files={"file": ("clip.wav", wav(clip), "audio/wav")}, params={"k": 3})
    assert r.status_code == 200
    results = r.json()["results"]
    assert len(results) == 3 and all({"track_id", "track", "path", "score", "time"} <= set(x) for x in results)
    assert uploads_left() == before
    refused = analysed.post("/similar", files={"file": ("notes.txt", b"hello there, not audio", "text/plain")})
    assert refused.status_code == 415


def test_a_long_recording_is_monitored_as_a_job_and_its_upload_deleted(analysed, stranger):
    before = uploads_left()
    mix = np.concatenate([stranger[: 8 * SR], track_samples(analysed, 4)[: 16 * SR], track_samples(analysed, 1)])
    r = analysed.post("/monitor", files={"file": ("mix.wav", wav(mix), "audio/wav")})
    assert r.status_code == 202 and r.json()["kind"] == "monitor" and r.json()["unit"] == "seconds"
    state = finished(analysed, r.json())
    assert state["state"] == "done" and state["done"] == state["total"] == round(len(mix) / SR)
    found = [(s["track_id"], s["start"], s["end"]) for s in state["result"]["segments"] if s["track_id"]]
    assert [tid for tid, _, _ in found] == [4, 1]
    assert abs(found[0][1] - 8) < 2 and abs(found[1][1] - 24) < 2
    assert uploads_left() == before


def test_a_recording_that_cannot_be_read_fails_its_job_naming_the_file(analysed):
    truncated = wav(np.zeros(SR * 20, np.float32))[:60]
    r = analysed.post("/monitor", files={"file": ("broken.wav", truncated, "audio/wav")})
    assert r.status_code == 202
    state = finished(analysed, r.json())
    assert state["state"] == "failed" and state["error"].startswith("broken.wav: ")


def test_the_track_list_keeps_the_tracks_whose_name_or_path_holds_every_word(analysed):
    every = analysed.get("/tracks").json()["tracks"]
    word = every[2]["track"].split()[0].casefold()
    kept = analysed.get("/tracks", params={"q": word.upper()}).json()
    assert kept["total"] >= 1 and all(word in f"{t['track']} {t['path']}".casefold() for t in kept["tracks"])
    assert analysed.get("/tracks", params={"q": "album"}).json()["total"] == 3  # the nested folder's tracks
    assert analysed.get("/tracks", params={"q": "no such words"}).json() == {"total": 0, "tracks": []}
