"""A learned fingerprint in a library: given by `index --fingerprint`, computed for tracks old and new, and
asked by `identify --engine learned|fused`.

An untrained network stands in for a trained one (it maps the same audio to the same vectors), so a
clip cut on the track's segment grid must be found at its offset, through the Library API and the CLI.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from tuneseek import Library, audio
from tuneseek.cli import main
from tuneseek.degrade import degrade, parse_degradations
from tuneseek.errors import AudioError, ModelError, UsageError
from tuneseek.fingerprint.fusion import DEFAULT_CORROBORATION
from tuneseek.fingerprint.learned import DEFAULT_CALIBRATION
from tuneseek.models import checkpoint
from tuneseek.models.fingerprint_net import FingerprintNet


@pytest.fixture(scope="module")
def fingerprint_run(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("runs") / "fp"
    checkpoint.save(folder, FingerprintNet(dim=32, width=4, hidden=16).eval(), extra={"task": "fingerprint"})
    return folder


@pytest.fixture(scope="module")
def learned_library(tmp_path_factory, music_dir, fingerprint_run):
    with Library.open(tmp_path_factory.mktemp("learned") / "lib") as lib:
        lib.add([music_dir], workers=1, analyse=False)  # landmarks only, before the model is given
        assert lib.engines == ("landmarks",) and lib.default_engine == "landmarks"
        assert lib.use_model(fingerprint_run, role="fingerprint") == "fingerprint:fp"
        report = lib.add([music_dir], workers=1, analyse=False)  # the tracks already there get it in place
        assert len(report.analysed) == 6 and not report.failed
        yield lib


def _clip(music_dir, tmp_path, start: float, seconds: float = 6.0):
    track = sorted(music_dir.rglob("*.flac"))[2]
    audio, sr = sf.read(track, dtype="float32")
    path = tmp_path / "clip.wav"
    sf.write(path, audio[int(start * sr) : int((start + seconds) * sr)], sr)
    return track, path


def test_a_library_given_a_fingerprint_answers_with_every_engine(learned_library, music_dir, tmp_path):
    track, clip = _clip(music_dir, tmp_path, start=5.0)
    assert learned_library.engines == ("landmarks", "learned", "fused")
    assert learned_library.default_engine == "landmarks"  # its run holds no fitted fusion
    for engine in ("landmarks", "learned", "fused"):
        match = learned_library.identify(clip, engine=engine)
        assert match is not None and match.track.path == str(track), engine
        assert abs(match.offset - 5.0) < 0.3, engine


def test_unknown_engines_and_a_library_without_a_fingerprint_are_refused_in_one_line(
    indexed_music, music_dir, tmp_path
):
    _, clip = _clip(music_dir, tmp_path, start=2.0)
    with pytest.raises(UsageError, match="needs a learned fingerprint"):
        indexed_music.identify(clip, engine="learned")
    with pytest.raises(UsageError, match="unknown identification engine"):
        indexed_music.identify(clip, engine="neural")


def test_a_fingerprint_run_is_refused_in_any_other_role(tmp_path, fingerprint_run):
    with (
        Library.open(tmp_path / "lib") as lib,
        pytest.raises(UsageError, match="use it with `tuneseek index --fingerprint`"),
    ):
        lib.use_model(fingerprint_run, role="embedder")


def test_index_and_identify_commands_take_the_fingerprint_and_the_engine(tmp_path, music_dir, fingerprint_run, capsys):
    lib = str(tmp_path / "lib")
    assert main(["index", "-L", lib, str(music_dir), "--landmarks-only", "--fingerprint", str(fingerprint_run)]) == 0
    track, clip = _clip(music_dir, tmp_path, start=8.0)
    capsys.readouterr()
    assert main(["identify", "-L", lib, "--engine", "learned", "--json", str(clip)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["match"]["path"] == str(track)
    assert np.isclose(out["match"]["offset"], 8.0, atol=0.3)
    assert main(["stats", "-L", lib]) == 0
    assert "learned      fingerprint:fp: 6 of 6 tracks" in capsys.readouterr().out


def test_evaluate_gives_song_level_rates_by_engine_and_segment_level_rates_of_the_run(
    tmp_path, music_dir, fingerprint_run, capsys
):
    from tuneseek.data.querysets import make_queries

    make_queries(music_dir, tmp_path / "q", length=5.0, per_track=1, seed=0, split="test")
    capsys.readouterr()
    args = ["evaluate", "identify", str(tmp_path / "q"), "--fingerprint", str(fingerprint_run), "--json"]
    assert main([*args, "--engine", "fused"]) == 0  # an untrained network: the landmarks answer clean clips
    song = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert song["queries"] == 6 and song["top1"] == 1.0 and song["false_positive_rate"] in (0.0, None)
    assert (
        main(["evaluate", str(fingerprint_run), "--data", f"queries:{tmp_path / 'q'}", "--cache", str(tmp_path / "c")])
        == 0
    )
    out = capsys.readouterr().out
    assert "exact hit" in out and "right track" in out
    assert main(["evaluate", str(fingerprint_run)]) == 1
    assert "is a learned fingerprint: score it on an origin/sample layout" in capsys.readouterr().err


def test_the_shipped_fingerprint_ranks_a_noisy_clip_off_the_segment_grid_first(tmp_path, music_dir):
    from tuneseek import audio
    from tuneseek.degrade import degrade

    with Library.open(tmp_path / "lib") as lib:
        assert lib.use_model("builtin", role="fingerprint") == "fingerprint:builtin"
        lib.add([music_dir], workers=1, analyse=False)
        track = sorted(music_dir.rglob("*.flac"))[4]
        audio_, sr = sf.read(track, dtype="float32")
        clip = degrade(audio_[int(7.13 * sr) : int(13.13 * sr)], sr, "noise:5db", rng=np.random.default_rng(0))
        # its evidence, not its verdict: the shipped calibration is fitted for libraries of hours, and in two
        # minutes of music the ranked scores cannot reach it (see tuneseek.fingerprint.learned.Calibration)
        best, second = lib.learned.evidence(audio.from_samples(clip, sr, 8000))[:2]
        assert lib.track(best.track_id).path == str(track)
        assert abs(best.offset - 7.13) < 0.3 and best.score > second.score + 2


def test_the_landmarks_count_what_lines_up_where_another_engine_places_a_clip(learned_library, music_dir):
    """What the fused engine weighs a learned-only answer with (see fingerprint/fusion.py)."""
    paths = sorted(music_dir.rglob("*.flac"))
    ids = {t.path: t.id for t in learned_library.tracks()}
    track, other = ids[str(paths[2])], ids[str(paths[0])]
    clip = audio.load(str(paths[2]), 8000)[5 * 8000 : 8 * 8000]
    landmarks = learned_library.identifier
    there, later, wrong, unknown = landmarks.lined_up(
        clip, [(track, 5.1), (track, 12.0), (other, 5.0), (999, 5.0)], 0.5, name="clip.wav"
    )
    assert there[0] > 30 and there[0] > 5 * max(there[1], later[0], wrong[0], 1) and unknown == (0, 0)
    noisy = degrade(clip, 8000, parse_degradations("noise:-7db"))
    assert landmarks.candidates(noisy) == []  # too noisy for the landmarks alone
    [there, wrong] = landmarks.lined_up(noisy, [(track, 5.0), (other, 5.0)], 0.5)
    assert there[0] > wrong[0]
    with pytest.raises(AudioError, match="quiet.wav"):
        landmarks.lined_up(np.zeros(8000 * 5, np.float32), [(track, 5.0)], 0.5, name="quiet.wav")


def test_tag_and_embed_refuse_a_fingerprint_run_in_one_line(tmp_path, music_dir, fingerprint_run, capsys):
    _, clip = _clip(music_dir, tmp_path, start=1.0)
    for command in ("tag", "embed"):
        assert main([command, "--model", str(fingerprint_run), str(clip)]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "is a learned fingerprint" in err and "index --fingerprint" in err


@pytest.mark.parametrize(
    ("calibration", "default"),
    [
        ({"calibration": DEFAULT_CALIBRATION.to_dict(), "fusion": DEFAULT_CORROBORATION.to_dict()}, "fused"),
        ({"calibration": DEFAULT_CALIBRATION.to_dict()}, "landmarks"),
        ("{not json", "landmarks"),
    ],
    ids=["fitted fusion", "no fusion", "unreadable"],
)
def test_fused_answers_by_default_only_for_a_fingerprint_whose_fusion_was_fitted(
    tmp_path, fingerprint_run, calibration, default
):
    run = tmp_path / "fp"
    shutil.copytree(fingerprint_run, run)
    text = calibration if isinstance(calibration, str) else json.dumps(calibration)
    (run / "calibration.json").write_text(text)
    with Library.open(tmp_path / "lib") as lib:
        lib.use_model(run, role="fingerprint")
        assert lib.default_engine == default
        if isinstance(calibration, str):  # asked for by name, the learned engines say what is wrong
            with pytest.raises(ModelError, match="calibration.json is not a calibration"):
                lib.candidates(np.zeros(8000 * 3, np.float32), sr=8000, engine="fused")


def test_the_landmarks_answer_a_clip_changed_in_place_afresh(learned_library, music_dir):
    """The landmarks keep the last clip's analysis for the fused engine's second question about it; a clip
    whose samples changed since is analysed again."""
    paths = sorted(music_dir.rglob("*.flac"))
    ids = {t.path: t.id for t in learned_library.tracks()}
    landmarks = learned_library.identifier
    clip = audio.load(str(paths[2]), 8000)[5 * 8000 : 8 * 8000]
    [first] = landmarks.candidates(clip, 1)
    assert first.track_id == ids[str(paths[2])]
    assert landmarks.lined_up(clip, [(first.track_id, first.offset)], 0.5) == landmarks.lined_up(
        clip.copy(), [(first.track_id, first.offset)], 0.5
    )
    clip[:] = audio.load(str(paths[0]), 8000)[5 * 8000 : 8 * 8000]  # the same array, another song
    [now] = landmarks.candidates(clip, 1)
    assert now.track_id == ids[str(paths[0])]
    clip[:] = 0.0
    with pytest.raises(AudioError):
        landmarks.candidates(clip, 1)


def test_fused_by_default_loads_the_learned_network_only_for_a_clip_the_landmarks_are_unsure_of(
    tmp_path, music_dir, fingerprint_run
):
    run = tmp_path / "fp"
    shutil.copytree(fingerprint_run, run)
    fitted = {"calibration": DEFAULT_CALIBRATION.to_dict(), "fusion": DEFAULT_CORROBORATION.to_dict()}
    (run / "calibration.json").write_text(json.dumps(fitted))
    with Library.open(tmp_path / "lib") as lib:
        lib.use_model(run, role="fingerprint")
        lib.add([music_dir], workers=1, analyse=False)
        assert lib.default_engine == "fused"
    track, clip = _clip(music_dir, tmp_path, start=5.0)
    asked = (
        "import sys\nfrom tuneseek import Library\n"
        f"with Library.open({str(tmp_path / 'lib')!r}) as lib:\n"
        f"    match = lib.identify({str(clip)!r})\n"
        "    print(match.track.path, 'tuneseek.fingerprint.learned' in sys.modules)\n"
    )
    said = subprocess.run([sys.executable, "-c", asked], capture_output=True, text=True, check=True).stdout
    assert said.split() == [str(track), "False"]  # a clean clip: the landmarks are certain, no network loaded
