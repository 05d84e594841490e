"""Text–audio pairs: caption files (.jsonl, .csv) and tag datasets read by tuneseek.data.captions.

The reader never decodes audio, so the "audio" here is empty files with audio names.
"""

import json
from pathlib import Path

import pytest

from tuneseek.data.captions import open_pairs, read_captions
from tuneseek.data.datasets import SPLITS
from tuneseek.errors import DatasetError


def touch(root: Path, *names: str) -> Path:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")
    return root


def jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def given_split_rows(n_per_split: int = 1) -> list[dict]:
    return [
        {"audio": f"clips/{s}{i}.wav", "caption": f"{s} clip {i}", "split": s}
        for s in SPLITS
        for i in range(n_per_split)
    ]


@pytest.fixture
def clips(tmp_path) -> Path:
    return touch(
        tmp_path, *(f"clips/{s}{i}.wav" for s in SPLITS for i in range(3)), *(f"clips/c{i}.wav" for i in range(30))
    )


def all_pairs(pairs):
    return [p for s in SPLITS for p in pairs.splits[s]]


def test_jsonl_rows_of_one_clip_merge_into_one_pair_with_several_captions(clips):
    rows = given_split_rows() + [
        {"audio": "clips/train0.wav", "caption": "calm   solo piano", "split": "train"},
        {"audio": "clips/train0.wav", "caption": "train clip 0", "split": "train"},  # a repeated caption counts once
        {"audio": str(clips / "clips/train1.wav"), "caption": "absolute path", "split": "train"},
        {"audio": "clips/../clips/train1.wav", "caption": "same file, other spelling", "split": "train"},
    ]
    pairs = open_pairs(jsonl(clips / "captions.jsonl", rows))
    assert pairs.split_source == "given in the file" and pairs.name == "captions.jsonl" and pairs.root == clips
    train = {p.key: p for p in pairs.splits["train"]}
    assert set(train) == {"clips/train0.wav", "clips/train1.wav"}
    assert train["clips/train0.wav"].captions == ("train clip 0", "calm solo piano")
    assert train["clips/train1.wav"].captions == ("absolute path", "same file, other spelling")
    p = train["clips/train0.wav"]
    assert p.path == clips / "clips/train0.wav" and p.start is None and p.end is None and p.tags == ()
    assert [len(pairs.splits[s]) for s in SPLITS] == [2, 1, 1] and pairs.notes == ()


def test_csv_with_spans_keeps_each_span_a_pair_of_its_own(clips):
    text = "\ufeffaudio,caption,start,end,split\n"  # a spreadsheet's byte-order mark is fine
    text += 'clips/train0.wav,"calm, slow piano",0,10,train\nclips/train0.wav,strings enter,10,20.5,train\n'
    text += "clips/train0.wav,calm piano again,0,10,train\nclips/valid0.wav,v,,,valid\nclips/test0.wav,t,,,test\n"
    (clips / "c.csv").write_text(text, encoding="utf-8")
    pairs = read_captions(clips / "c.csv")
    train = sorted(pairs.splits["train"], key=lambda p: p.start)
    assert [(p.key, p.start, p.end) for p in train] == [
        ("clips/train0.wav@0-10", 0.0, 10.0),
        ("clips/train0.wav@10-20.5", 10.0, 20.5),
    ]
    assert train[0].captions == ("calm, slow piano", "calm piano again") and train[0].group == train[1].group
    assert pairs.splits["valid"][0].start is None


def test_without_a_split_column_the_split_is_ours_deterministic_and_by_file(clips):
    rows = [
        {"audio": f"clips/c{i}.wav", "caption": f"clip {i}", "start": s, "end": s + 5}
        for i in range(30)
        for s in (0, 5)
    ]
    path = jsonl(clips / "c.jsonl", rows)
    pairs = open_pairs(path, seed=3)
    assert pairs.split_source == "deterministic 80/10/10 (seed 3)"
    assert [len(pairs.splits[s]) for s in SPLITS] == [48, 6, 6]
    split_of = {}
    for s in SPLITS:
        for p in pairs.splits[s]:
            assert split_of.setdefault(p.group, s) == s  # both spans of a file in the same split
    assert [p.key for p in all_pairs(open_pairs(path, seed=3))] == [p.key for p in all_pairs(pairs)]
    assert [p.key for p in all_pairs(open_pairs(path, seed=4))] != [p.key for p in all_pairs(pairs)]
    assert "train 48, valid 6, test 6 pairs" in pairs.describe()
    assert pairs.summary()["splits"] == {"train": 48, "valid": 6, "test": 6}


def test_rows_whose_audio_is_missing_are_left_out_with_a_note(clips):
    rows = given_split_rows() + [{"audio": f"clips/gone{i}.wav", "caption": "x", "split": "train"} for i in range(5)]
    pairs = open_pairs(jsonl(clips / "c.jsonl", rows))
    assert len(all_pairs(pairs)) == 3
    (note,) = pairs.notes
    assert note.startswith(
        "5 row(s) left out, their audio is missing: clips/gone0.wav (line 4), clips/gone1.wav "
        "(line 5), clips/gone2.wav (line 6), ..."
    )
    assert "note     5 row(s) left out" in pairs.describe()


def test_a_file_whose_audio_is_all_missing_is_an_error(tmp_path):
    path = jsonl(tmp_path / "c.jsonl", given_split_rows())
    with pytest.raises(DatasetError, match="none of the 3 rows names an audio file that exists"):
        open_pairs(path)


@pytest.mark.parametrize(
    "row, message",
    [
        ('{"audio": "clips/c0.wav", "caption": "x"', "line 2: not valid JSON"),
        ('["clips/c0.wav", "x"]', "line 2: expected a JSON object"),
        ({"caption": "x"}, "line 2: no audio path"),
        ({"audio": "clips/c0.wav", "caption": "  "}, "line 2: no caption"),
        ({"audio": "clips/c0.wav", "caption": "x", "start": 5}, "line 2: give both start and end, or neither"),
        ({"audio": "clips/c0.wav", "caption": "x", "end": 5}, "line 2: give both start and end, or neither"),
        (
            {"audio": "clips/c0.wav", "caption": "x", "start": 5, "end": 5},
            "line 2: start 5 s must be at least 0 and before end 5 s",
        ),
        (
            {"audio": "clips/c0.wav", "caption": "x", "start": 9, "end": 3},
            "line 2: start 9 s must be at least 0 and before end 3 s",
        ),
        ({"audio": "clips/c0.wav", "caption": "x", "start": -1, "end": 3}, "line 2: start -1 s must be at least 0"),
        ({"audio": "clips/c0.wav", "caption": "x", "start": "soon", "end": 3}, "line 2: start 'soon' is not a number"),
        ({"audio": "clips/c0.wav", "caption": "x", "start": True, "end": 3}, "line 2: start True is not a number"),
        ({"audio": "clips/c0.wav", "caption": "x", "start": 0, "end": "inf"}, "line 2: end 'inf' is not a number"),
        (
            {"audio": "clips/c0.wav", "caption": "x", "split": "dev"},
            "line 2: split 'dev' is not one of train, valid, test",
        ),
    ],
)
def test_bad_jsonl_rows_are_named_by_file_and_line(clips, row, message):
    path = jsonl(clips / "c.jsonl", [{"audio": "clips/c1.wav", "caption": "fine"}, row])
    with pytest.raises(DatasetError, match=message) as e:
        open_pairs(path)
    assert str(e.value).startswith(str(path))


def test_bad_csv_rows_and_headers_are_named(clips):
    (clips / "a.csv").write_text("audio,caption,start,end\nclips/c0.wav,fine,,\nclips/c1.wav,x,4,\n")
    with pytest.raises(DatasetError, match=r"a\.csv, line 3: give both start and end"):
        open_pairs(clips / "a.csv")
    (clips / "b.csv").write_text("path,text\nclips/c0.wav,x\n")
    with pytest.raises(DatasetError, match="must name at least the columns audio and caption"):
        open_pairs(clips / "b.csv")
    (clips / "c.csv").write_bytes(b"audio,caption\nclips/c0.wav,caf\xe9\n")
    with pytest.raises(DatasetError, match="not UTF-8"):
        open_pairs(clips / "c.csv")


def test_a_split_column_given_on_some_rows_only_is_an_error_even_within_one_clip(clips):
    rows = given_split_rows() + [{"audio": "clips/train1.wav", "caption": "no split here"}]
    with pytest.raises(DatasetError, match="line 1 gives a split and line 4 does not"):
        open_pairs(jsonl(clips / "c.jsonl", rows))
    rows = given_split_rows() + [{"audio": "clips/train0.wav", "caption": "again, no split"}]
    with pytest.raises(DatasetError, match="line 1 gives a split and line 4 does not"):
        open_pairs(jsonl(clips / "d.jsonl", rows))
    (clips / "e.csv").write_text("audio,caption,split\nclips/train0.wav,x,train\nclips/valid0.wav,y,\n")
    with pytest.raises(DatasetError, match="line 2 gives a split and line 3 does not"):
        open_pairs(clips / "e.csv")


def test_one_clip_in_two_given_splits_is_an_error(clips):
    rows = given_split_rows() + [{"audio": "clips/train0.wav", "caption": "y", "split": "test"}]
    with pytest.raises(DatasetError, match=r"line 4: clips/train0.wav is in split 'train' on line 1 and 'test' here"):
        open_pairs(jsonl(clips / "c.jsonl", rows))


def test_an_empty_split_and_an_empty_file_are_errors(clips):
    rows = [r for r in given_split_rows() if r["split"] != "valid"]
    with pytest.raises(DatasetError, match=r"the valid split\(s\) are empty \(2 pairs in all\)"):
        open_pairs(jsonl(clips / "c.jsonl", rows))
    with pytest.raises(DatasetError, match="no caption rows"):
        open_pairs(jsonl(clips / "d.jsonl", ["", "  "]))
    with pytest.raises(DatasetError, match="no such file"):
        open_pairs(clips / "nothing.jsonl")


def test_a_tag_dataset_gives_one_pair_per_item_with_its_tags_as_text(tmp_path):
    touch(tmp_path, *(f"{g}/{g}{i}.wav" for g in ("rock", "jazz") for i in range(3)))
    pairs = open_pairs(f"folder:{tmp_path}")
    items = all_pairs(pairs)
    assert len(items) == 6 and all(p.captions == () and p.tags == (p.key.split("/")[0],) for p in items)
    assert pairs.split_source == "deterministic 80/10/10 (seed 0)"


def mtat(root: Path, tagged) -> Path:
    """A MagnaTagATune-shaped folder of 12 clips (two per song), tagged "rock" where ``tagged(i)``."""
    rows = ["clip_id\trock\tmp3_path"]
    for i in range(12):
        rel = f"0/artist-album-{i // 2:02d}-song-{(i % 2) * 30}-{(i % 2) * 30 + 29}.mp3"
        rows.append(f"{i}\t{int(tagged(i))}\t{rel}")
        touch(root, rel)
    (root / "annotations_final.csv").write_text("\n".join(rows) + "\n")
    return root


def test_items_of_a_tag_dataset_without_tags_are_left_out_with_a_note(tmp_path):
    pairs = open_pairs(f"mtat:{mtat(tmp_path, lambda i: i % 2 == 0)}")
    assert len(all_pairs(pairs)) == 6 and all(p.tags == ("rock",) for p in all_pairs(pairs))
    assert pairs.notes[-1] == "as text–audio pairs, the 6 item(s) without tags are left out: no text to pair them with"
    with pytest.raises(DatasetError, match=r"no item of the train, valid, test split\(s\) has a tag"):
        open_pairs(f"mtat:{mtat(tmp_path / 'none', lambda i: False)}")


def test_a_dataset_without_labels_gives_no_pairs(tmp_path):
    touch(tmp_path / "loose", *(f"a{i}.wav" for i in range(5)))
    with pytest.raises(DatasetError, match="has no labels: text–audio pairs need captions or tags"):
        open_pairs(f"folder:{tmp_path / 'loose'}")
    with pytest.raises(DatasetError, match="expected KIND:PATH"):
        open_pairs("captions.txt")


def test_a_library_gives_one_pair_per_track_with_titles_folders_and_confident_tags(tmp_path):
    import numpy as np
    import soundfile as sf

    from tuneseek.library import Library
    from tuneseek.synth import synth_catalog

    music = tmp_path / "Music"
    for i, t in enumerate(synth_catalog(6, duration=4.0, sr=16000, seed=2)):
        folder = music / ("Jazz" if i < 3 else "Folk_Songs") / f"0{i} Album"
        folder.mkdir(parents=True)
        sf.write(folder / f"song{i}.wav", t.audio, 16000)
    with Library.open(tmp_path / "lib") as lib:
        lib.add([music], workers=1, analyse=False)
        for track in lib.tracks():
            lib.set_tags(
                track, vocabulary="mtt", probs=np.array([0.9, 0.1, 0.35], np.float32), labels=["piano", "rock", "slow"]
            )
    pairs = open_pairs(f"library:{tmp_path / 'lib'}")
    every = [p for split in pairs.splits.values() for p in split]
    assert pairs.name == "library" and len(every) == 6 and all(pairs.splits.values())
    jazz = next(p for p in every if "/Jazz/" in str(p.path))
    assert jazz.tags[:2] == ("Jazz", "Album") and set(jazz.tags[2:]) == {"piano", "slow"}  # rock is below 0.3
    assert any(p.tags[0] == "Folk Songs" for p in every)
    with pytest.raises(DatasetError, match="not a tuneseek library"):
        open_pairs(f"library:{tmp_path}")
