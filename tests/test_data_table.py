"""``csv:FILE``: a table of audio files with label columns, an optional own split and groups; and a probe trained
and evaluated through it from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training_data import write_styles
from tuneseek.cli import main
from tuneseek.data.datasets import open_dataset
from tuneseek.errors import DatasetError


def write_table(path: Path, header: str, rows: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def grooves_table(tmp_path: Path, with_split: bool) -> Path:
    """11 songs per family in 4 grooves (a groove = a group), two label columns, and a split by groove if asked."""
    rows = []
    for family in ("rock", "waltz", "swing"):
        for groove in range(4):
            split = ("train", "train", "valid", "test")[groove]
            for song in range(3):
                name = f"audio/{family}-g{groove}-s{song}.flac"
                lead = ("flute", "organ", "bell")[song]
                rows.append(f"{name},{family},{lead},{family}-groove{groove}" + (f",{split}" if with_split else ""))
    header = "path,family,lead,group" + (",split" if with_split else "")
    return write_table(tmp_path / "labels.csv", header, rows)


def test_a_table_gives_the_chosen_label_column_and_its_own_split(tmp_path):
    table = grooves_table(tmp_path, with_split=True)
    family = open_dataset(f"csv:{table}", label="family")
    assert family.task == "single-label" and family.labels == ("rock", "swing", "waltz")
    assert "own split column" in family.split_source
    assert [len(family.splits[s]) for s in ("train", "valid", "test")] == [18, 9, 9]
    assert {item.group for item in family.splits["test"]} == {"rock-groove3", "waltz-groove3", "swing-groove3"}
    assert family.splits["train"][0].path == tmp_path / "audio" / "rock-g0-s0.flac"

    lead = open_dataset(f"csv:{table}", label="lead")
    assert lead.labels == ("bell", "flute", "organ")
    assert [item.key for item in lead.splits["test"]] == [item.key for item in family.splits["test"]]


def test_without_a_split_column_the_split_is_ours_by_group_and_stratified(tmp_path):
    table = grooves_table(tmp_path, with_split=False)
    ds = open_dataset(f"csv:{table}", label="family", seed=3)
    assert ds.split_source == "deterministic 80/10/10 (seed 3)"
    seen = {}
    for split, items in ds.splits.items():
        for item in items:
            assert seen.setdefault(item.group, split) == split  # a groove never straddles splits
    for split in ("valid", "test"):
        assert sorted({item.labels[0] for item in ds.splits[split]}) == ["rock", "swing", "waltz"]
    assert ds.splits == open_dataset(f"csv:{table}", label="family", seed=3).splits


def test_tab_separated_tables_with_other_split_names_are_read(tmp_path):
    rows = [f"a{i}.wav\tx{i % 3}\t{('train', 'validation', 'dev', 'TEST')[i % 4]}" for i in range(12)]
    table = write_table(tmp_path / "t.tsv", "path\tlabel\tsplit", rows)
    ds = open_dataset(f"csv:{table}")
    assert [len(ds.splits[s]) for s in ("train", "valid", "test")] == [3, 6, 3]


@pytest.mark.parametrize(
    "header, rows, options, message",
    [
        ("path,family", ["a.wav,rock"], {}, "no column label; the columns are path, family (name the label column"),
        ("file,label", ["a.wav,rock"], {}, "no column path; the columns are file, label"),
        ("path,label,split", ["a.wav,rock,train", "b.wav,rock,holdout"], {}, "line 3: split 'holdout' is not"),
        ("path,label", ["a.wav,rock", "b.wav"], {}, "line 3: 1 fields, the header has 2"),
        ("path,label", ["a.wav,rock", "b.wav,"], {}, "line 3: empty label"),
        ("path,label", [], {}, "no rows below the header"),
        ("path,label", ["a.wav,x", "a.wav,y"], {}, "1 file(s) listed twice, e.g. a.wav"),
        ("path,label", [f"{i}.wav,{'xy'[i % 2]}" for i in range(5)], {}, "fewer than 3 groups"),
        ("path,label,split", ["a.wav,x,train", "b.wav,x,valid"], {}, "the split column names no test row"),
    ],
)
def test_a_malformed_table_is_refused_naming_the_file_the_line_and_why(tmp_path, header, rows, options, message):
    table = write_table(tmp_path / "labels.csv", header, rows)
    with pytest.raises(DatasetError, match="labels.csv") as caught:
        open_dataset(f"csv:{table}", **options)
    assert message in str(caught.value)


def test_a_missing_or_unreadable_table_is_refused(tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        open_dataset(f"csv:{tmp_path / 'nothing.csv'}")
    with pytest.raises(DatasetError, match="a folder, not a table file"):
        open_dataset(f"csv:{tmp_path}")
    (tmp_path / "latin1.csv").write_bytes(b"path,label\ncaf\xe9.wav,x\n")
    with pytest.raises(DatasetError, match="not UTF-8 text"):
        open_dataset(f"csv:{tmp_path / 'latin1.csv'}")


def test_a_probe_trains_and_evaluates_on_a_table_column_from_the_command_line(tmp_path, capsys):
    styles = write_styles(tmp_path / "styles", 8, 6.0)
    rows = []
    for label in ("bright", "dark", "plain"):
        for i in range(8):
            split = "test" if i == 7 else "valid" if i == 6 else "train"
            rows.append(f"styles/{label}/{label}{i}.wav,{label},decoy{i % 2},{split}")
    table = write_table(tmp_path / "labels.csv", "path,style,other,split", rows)
    out = tmp_path / "probe"
    common = ["--loader-workers", "1", "--folds", "3", "--cache", str(tmp_path / "cache"), "--features", "timbre"]
    args = ["train", "classifier", "--data", f"csv:{table}", "--data-option", "label=style", "--out", str(out)]
    assert main(args + common) == 0
    assert main(["evaluate", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["items"] == 3 and result["accuracy"] == 1.0  # the table's own test split: one song per style

    assert (
        main(["evaluate", str(out), "--data", f"csv:{table}", "--data-option", "label=style", "--split", "valid"]) == 0
    )
    assert "valid split of csv:" in capsys.readouterr().out
    assert main(["evaluate", str(out), "--data", f"csv:{table}", "--data-option", "label=other"]) == 1
    assert "decoy0" in capsys.readouterr().err and styles.exists()
