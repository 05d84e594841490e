"""Dataset readers for training: folder, MagnaTagATune, MTG-Jamendo, on tiny generated copies."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tuneseek.data.datasets import SPLITS, Dataset, Item, PrecomputedMel, open_dataset, split_by_group
from tuneseek.data.mtat import song_of
from tuneseek.errors import DatasetError

# ----------------------------------------------------------------------------- makers


def write_tone(path: Path, freq: float = 440.0, sr: int = 8000, seconds: float = 0.05) -> Path:
    """A short sine wave, the stand-in for a song."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(sr * seconds)) / sr
    sf.write(path, 0.3 * np.sin(2 * np.pi * freq * t), sr)
    return path


def make_genres(root: Path, counts: dict[str, int]) -> Path:
    """GTZAN-style ``root/<label>/<label>.0000N.wav``, ``counts[label]`` files each."""
    for label, n in counts.items():
        for i in range(n):
            write_tone(root / label / f"{label}.{i:05d}.wav", 200.0 + 10 * i)
    return root


def write_tsv(path: Path, rows: list[list[str]], quoted: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    quote = (lambda field: f'"{field}"') if quoted else (lambda field: field)
    path.write_text("".join("\t".join(map(quote, row)) + "\n" for row in rows), encoding="utf-8")
    return path


def mtat_path(song: int, clip: int) -> str:
    """An MTAT-like mp3 path: folder, artist-album-track-title, clip-time suffix."""
    return f"{'0123456789abcdef'[song % 16]}/artist_{song}-album_{song}-01-song_{song}-{clip * 29}-{clip * 29 + 29}.mp3"


def make_mtat(root: Path, tags: list[str], flags: np.ndarray, paths: list[str], quoted: bool = True) -> Path:
    """``annotations_final.csv`` for clips 0..n-1 (quoted fields, as in the release)."""
    rows = [["clip_id", *tags, "mp3_path"]]
    rows += [[str(i), *map(str, row), path] for i, (row, path) in enumerate(zip(flags.astype(int), paths))]
    return write_tsv(root / "annotations_final.csv", rows, quoted=quoted)


def songs_mtat(root: Path, n_songs: int = 30, clips: int = 3) -> Path:
    """``n_songs`` songs of ``clips`` clips, three tags spread over them."""
    paths = [mtat_path(s, c) for s in range(n_songs) for c in range(clips)]
    flags = np.array([[i % 2 == 0, i % 3 == 0, i % 5 == 0] for i in range(len(paths))])
    return make_mtat(root, ["guitar", "rock", "piano"], flags, paths)


def write_mtat_split(folder: Path, tags: list[str], binary: np.ndarray, splits: dict[str, list[str]]) -> None:
    """The split files most MTAT papers use: ``<index>\\t<path>`` strings, binary.npy, tags.npy."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "tags.npy", np.array(tags))
    np.save(folder / "binary.npy", binary)
    for split, entries in splits.items():
        np.save(folder / f"{split}.npy", np.array(entries, dtype=str))


JAMENDO_HEADER = ["TRACK_ID", "ARTIST_ID", "ALBUM_ID", "PATH", "DURATION", "TAGS"]


def jamendo_row(n: int, artist: int, *tags: str) -> list[str]:
    return [f"track_{n:07d}", f"artist_{artist:06d}", f"album_{artist:06d}", f"{n % 100:02d}/{n}.mp3", "212.5", *tags]


def make_jamendo(root: Path, rows: list[list[str]], name: str = "autotagging_genre.tsv") -> Path:
    write_tsv(root / name, [JAMENDO_HEADER, *rows])
    return root


def artists_jamendo(root: Path, n_artists: int = 30) -> Path:
    """Two tracks per artist, genres cycling over rock, pop, jazz; some with a second tag."""
    genres = ["rock", "pop", "jazz"]
    rows = []
    for n in range(2 * n_artists):
        tags = [f"genre---{genres[n % 3]}"] + (["genre---electronic"] if n % 4 == 0 else [])
        rows.append(jamendo_row(n, n // 2, *tags, "instrument---guitar"))
    return make_jamendo(root, rows, "autotagging.tsv")


def single_label_jamendo(root: Path, per_class: dict[str, int]) -> Path:
    """Tracks with exactly one genre (``per_class`` of each), plus two with two genres."""
    rows, n = [], 0
    for genre, count in per_class.items():
        for _ in range(count):
            rows.append(jamendo_row(n, n, f"genre---{genre}", "mood/theme---happy"))
            n += 1
    rows.append(jamendo_row(n, n, "genre---rock", "genre---pop"))
    rows.append(jamendo_row(n + 1, n + 1, "genre---jazz", "genre---pop"))
    return make_jamendo(root, rows, "autotagging.tsv")


def keys(dataset: Dataset, split: str) -> list[str]:
    return [item.key for item in dataset.splits[split]]


# ----------------------------------------------------------------------------- common


def test_split_by_group_is_80_10_10_and_keeps_groups_whole():
    groups = [f"g{i // 2}" for i in range(200)]  # 100 groups of 2
    chosen = split_by_group(groups, seed=0)
    assert [len(chosen[s]) for s in SPLITS] == [160, 20, 20]
    for split in SPLITS:
        others = {groups[i] for s in SPLITS if s != split for i in chosen[s]}
        assert not others & {groups[i] for i in chosen[split]}


def test_dataset_with_an_empty_split_is_an_error(tmp_path):
    item = Item("a", tmp_path / "a.wav", ())
    with pytest.raises(DatasetError, match="the test split is empty"):
        Dataset("folder", tmp_path, "unlabelled", (), {"train": [item], "valid": [item], "test": []})


def test_open_dataset_unknown_kind_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match="KIND one of folder, mtat, jamendo"):
        open_dataset(f"gtzan:{tmp_path}")
    with pytest.raises(DatasetError, match="KIND:PATH"):
        open_dataset(str(tmp_path))


def test_open_dataset_missing_path_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match="no such folder") as e:
        open_dataset(f"folder:{tmp_path / 'nowhere'}")
    assert e.value.where == str(tmp_path / "nowhere")


def test_open_dataset_unknown_option_names_the_accepted_ones(tmp_path):
    make_genres(tmp_path, {"a": 3})
    with pytest.raises(DatasetError, match="unknown option.*colour.*takes seed, labelled"):
        open_dataset(f"folder:{tmp_path}", colour="red")


def test_open_dataset_expands_home(tmp_path, monkeypatch):
    make_genres(tmp_path / "genres", {"a": 3, "b": 3})
    monkeypatch.setenv("HOME", str(tmp_path))
    assert open_dataset("folder:~/genres").root == tmp_path / "genres"


def test_precomputed_mel_to_dict():
    assert PrecomputedMel(12000, 512, 256, 96).to_dict() == {
        "sample_rate": 12000,
        "n_fft": 512,
        "hop": 256,
        "n_mels": 96,
    }


# ----------------------------------------------------------------------------- folder


def test_folder_labels_are_the_subfolders_alphabetically(tmp_path):
    make_genres(tmp_path, {"rock": 4, "blues": 3, "jazz": 5})
    ds = open_dataset(f"folder:{tmp_path}")
    assert (ds.name, ds.task, ds.labels) == ("folder", "single-label", ("blues", "jazz", "rock"))
    item = ds.splits["train"][0]
    assert item.path == tmp_path / item.key and item.group == item.key and item.features is None
    assert item.labels == (item.key.split("/")[0],)


def test_folder_split_is_stratified_with_every_label_in_every_split(tmp_path):
    make_genres(tmp_path, {"blues": 3, "jazz": 10, "rock": 20})
    ds = open_dataset(f"folder:{tmp_path}")
    per_split = {s: ds.summary()["splits"][s]["label_counts"] for s in SPLITS}
    assert per_split["valid"] == {"blues": 1, "jazz": 1, "rock": 2}
    assert per_split["test"] == {"blues": 1, "jazz": 1, "rock": 2}
    assert per_split["train"] == {"blues": 1, "jazz": 8, "rock": 16}
    assert ds.split_source == "deterministic 80/10/10 (seed 0)"


def test_folder_split_is_deterministic_and_independent_of_creation_order(tmp_path):
    forward, backward = tmp_path / "f", tmp_path / "b"
    names = [f"x{i:02d}.wav" for i in range(12)]
    for name in names:
        write_tone(forward / "a" / name)
    for name in reversed(names):
        write_tone(backward / "a" / name)
    one, two = open_dataset(f"folder:{forward}"), open_dataset(f"folder:{backward}")
    assert all(keys(one, s) == keys(two, s) for s in SPLITS)
    other = open_dataset(f"folder:{forward}", seed=1)
    assert any(keys(one, s) != keys(other, s) for s in SPLITS)


def test_folder_finds_audio_recursively_and_ignores_hidden_and_non_audio_files(tmp_path):
    make_genres(tmp_path, {"rock": 3, "pop": 3})
    write_tone(tmp_path / "rock" / "live" / "deep.flac")
    write_tone(tmp_path / "rock" / ".hidden.wav")
    write_tone(tmp_path / "pop" / ".cache" / "p.wav")
    (tmp_path / "rock" / "notes.txt").write_text("not audio")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "README").write_text("no audio here, so not a label")
    ds = open_dataset(f"folder:{tmp_path}")
    found = sorted(key for s in SPLITS for key in keys(ds, s))
    assert ds.labels == ("pop", "rock")
    assert "rock/live/deep.flac" in found and len(found) == 7


def test_folder_without_label_folders_is_unlabelled(tmp_path):
    for i in range(10):
        write_tone(tmp_path / f"song{i}.wav")
    ds = open_dataset(f"folder:{tmp_path}")
    assert (ds.task, ds.labels) == ("unlabelled", ())
    assert sorted(len(ds.splits[s]) for s in SPLITS) == [1, 1, 8]
    assert all(item.labels == () and item.group == item.key for s in SPLITS for item in ds.splits[s])
    with pytest.raises(DatasetError, match="no targets"):
        ds.targets("train")


def test_folder_labelled_false_ignores_the_label_folders(tmp_path):
    make_genres(tmp_path, {"rock": 3, "pop": 3})
    ds = open_dataset(f"folder:{tmp_path}", labelled=False)
    assert ds.task == "unlabelled" and sum(len(ds.splits[s]) for s in SPLITS) == 6


def test_folder_targets_are_class_indices(tmp_path):
    make_genres(tmp_path, {"a": 3, "b": 3, "c": 3})
    ds = open_dataset(f"folder:{tmp_path}")
    targets = ds.targets("test")
    assert targets.dtype == np.int64
    assert [ds.labels[t] for t in targets] == [item.labels[0] for item in ds.splits["test"]]


def test_folder_label_with_fewer_than_three_files_is_an_error_naming_it(tmp_path):
    make_genres(tmp_path, {"rock": 5, "jazz": 2, "pop": 1})
    with pytest.raises(DatasetError, match=r"fewer than 3 audio files.*'jazz' \(2\), 'pop' \(1\)"):
        open_dataset(f"folder:{tmp_path}")


def test_folder_empty_is_an_error(tmp_path):
    (tmp_path / "rock").mkdir()
    (tmp_path / "rock" / "cover.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(DatasetError, match="no audio files") as e:
        open_dataset(f"folder:{tmp_path}")
    assert e.value.where == str(tmp_path)


def test_folder_audio_beside_label_folders_is_an_error(tmp_path):
    make_genres(tmp_path, {"rock": 3})
    write_tone(tmp_path / "stray.wav")
    with pytest.raises(DatasetError, match="outside any label folder.*stray.wav"):
        open_dataset(f"folder:{tmp_path}")


def test_folder_labelled_true_without_label_folders_is_an_error(tmp_path):
    for i in range(3):
        write_tone(tmp_path / f"song{i}.wav")
    with pytest.raises(DatasetError, match="no label sub-folders"):
        open_dataset(f"folder:{tmp_path}", labelled=True)


def test_folder_with_fewer_than_three_unlabelled_files_is_an_error(tmp_path):
    write_tone(tmp_path / "one.wav")
    with pytest.raises(DatasetError, match="1 audio file.*at least 3"):
        open_dataset(f"folder:{tmp_path}")


def make_songs(root: Path, label: str, n_songs: int, excerpts: int = 3) -> Path:
    """``root/<label>/<label>-song-S/<label>-song-S-NN.wav``: each song cut into ``excerpts`` files."""
    for s in range(n_songs):
        for n in range(excerpts):
            write_tone(root / label / f"{label}-song-{s}" / f"{label}-song-{s}-{n:02d}.wav", 200.0 + 10 * s)
    return root


def groups_of(dataset: Dataset) -> dict[str, str]:
    return {item.key: item.group for s in SPLITS for item in dataset.splits[s]}


def test_folder_files_in_a_sub_folder_of_a_label_share_the_group_label_and_sub_folder(tmp_path):
    make_songs(tmp_path, "rock", 3, excerpts=2)
    make_genres(tmp_path, {"jazz": 3})
    groups = groups_of(open_dataset(f"folder:{tmp_path}"))
    assert (
        groups["rock/rock-song-1/rock-song-1-00.wav"]
        == groups["rock/rock-song-1/rock-song-1-01.wav"]
        == "rock/rock-song-1"
    )


def test_folder_files_directly_in_a_label_folder_stay_their_own_group(tmp_path):
    make_genres(tmp_path, {"jazz": 3})
    make_songs(tmp_path, "jazz", 1)
    groups = groups_of(open_dataset(f"folder:{tmp_path}"))
    assert [groups[f"jazz/jazz.{i:05d}.wav"] for i in range(3)] == [f"jazz/jazz.{i:05d}.wav" for i in range(3)]


def test_folder_files_deeper_in_a_sub_folder_share_the_group_of_the_first_sub_folder(tmp_path):
    make_genres(tmp_path, {"rock": 3})
    write_tone(tmp_path / "rock" / "album" / "cd1" / "a.wav")
    write_tone(tmp_path / "rock" / "album" / "cd2" / "b.wav")
    groups = groups_of(open_dataset(f"folder:{tmp_path}"))
    assert groups["rock/album/cd1/a.wav"] == groups["rock/album/cd2/b.wav"] == "rock/album"


def test_folder_excerpts_of_one_song_never_straddle_splits(tmp_path):
    make_songs(tmp_path, "orchestral", 12, excerpts=4)
    make_songs(tmp_path, "rock", 5, excerpts=4)
    ds = open_dataset(f"folder:{tmp_path}")
    split_of: dict[str, set[str]] = {}
    for split in SPLITS:
        for item in ds.splits[split]:
            split_of.setdefault(item.group, set()).add(split)
    assert len(split_of) == 17 and all(len(splits) == 1 for splits in split_of.values())
    assert [ds.summary()["splits"][s]["groups"] for s in SPLITS] == [13, 2, 2]


def test_folder_label_with_fewer_than_three_sub_folders_is_an_error_though_it_has_many_files(tmp_path):
    make_songs(tmp_path, "rock", 2, excerpts=5)
    make_genres(tmp_path, {"jazz": 3})
    with pytest.raises(
        DatasetError, match=r"fewer than 3 audio files \(a sub-folder's files count as one\).*'rock' \(2\)"
    ):
        open_dataset(f"folder:{tmp_path}")


def test_folder_unlabelled_files_stay_their_own_group_inside_sub_folders(tmp_path):
    make_songs(tmp_path, "rock", 2, excerpts=2)
    ds = open_dataset(f"folder:{tmp_path}", labelled=False)
    assert all(group == key for key, group in groups_of(ds).items())


# ----------------------------------------------------------------------------- MagnaTagATune


def top50_mtat(root: Path) -> Path:
    """53 tag columns named in reverse (column j is ``tag{52-j}``) over 12 clips of 4 songs:
    columns 0-1 have 4 positives, 2-47 three, 48-52 one (a 5-way tie for the last 2 places)."""
    tags = [f"tag{52 - j:02d}" for j in range(53)]
    counts = [4, 4] + [3] * 46 + [1] * 5
    flags = np.zeros((12, 53), dtype=int)
    for j, count in enumerate(counts):
        flags[:count, j] = 1
    flags[:3, 48:] = 0
    flags[6, 48:] = 1  # the tied tags all on clip 6
    paths = [mtat_path(s, c) for s in range(4) for c in range(3)]
    return make_mtat(root, tags, flags, paths)


def test_mtat_top50_are_the_most_frequent_tags_ties_by_column_order(tmp_path):
    top50_mtat(tmp_path)
    ds = open_dataset(f"mtat:{tmp_path}")
    assert len(ds.labels) == 50
    assert {"tag04", "tag03"} <= set(ds.labels)  # columns 48, 49 win the tie
    assert not {"tag02", "tag01", "tag00"} & set(ds.labels)


def test_mtat_labels_sorted_by_frequency_then_name(tmp_path):
    top50_mtat(tmp_path)
    ds = open_dataset(f"mtat:{tmp_path}")
    expected = ("tag51", "tag52", *[f"tag{n:02d}" for n in range(5, 51)], "tag03", "tag04")
    assert ds.labels == expected


def test_mtat_clips_without_a_top_tag_are_kept_as_zero_rows(tmp_path):
    top50_mtat(tmp_path)
    ds = open_dataset(f"mtat:{tmp_path}", seed=3)
    targets = {s: ds.targets(s) for s in SPLITS}
    assert sum(len(t) for t in targets.values()) == 12
    assert all(t.dtype == np.float32 and t.shape[1] == 50 for t in targets.values())
    assert sum(int((t.sum(axis=1) == 0).sum()) for t in targets.values()) == 7  # clips 4, 5, 7-11
    summary = ds.summary()
    assert sum(summary["splits"][s]["items_without_labels"] for s in SPLITS) == 7
    assert "7 clip(s) with none of the 50 tags kept as all-zero rows" in summary["notes"][0]


def test_mtat_song_is_the_path_without_the_clip_time_suffix():
    path = "f/american_bach_soloists-j_s__bach_solo_cantatas-01-bwv54__i_aria-30-59.mp3"
    assert song_of(path) == "f/american_bach_soloists-j_s__bach_solo_cantatas-01-bwv54__i_aria"
    assert song_of("a/odd_name.mp3") == "a/odd_name"


def test_mtat_clips_of_one_song_never_straddle_splits(tmp_path):
    songs_mtat(tmp_path, n_songs=30, clips=3)
    ds = open_dataset(f"mtat:{tmp_path}")
    split_of: dict[str, str] = {}
    for split in SPLITS:
        for item in ds.splits[split]:
            assert split_of.setdefault(item.group, split) == split
    assert len(split_of) == 30 and [len(ds.splits[s]) for s in SPLITS] == [72, 9, 9]
    item = ds.splits["train"][0]
    assert item.group == song_of(item.path.relative_to(tmp_path).as_posix())


def test_mtat_items_carry_clip_ids_labels_and_audio_paths(tmp_path):
    songs_mtat(tmp_path)
    (tmp_path / "mp3").mkdir()
    ds = open_dataset(f"mtat:{tmp_path}")
    assert ds.labels == ("guitar", "rock", "piano")  # 45, 30, 18 positives
    clip0 = next(item for s in SPLITS for item in ds.splits[s] if item.key == "0")
    assert clip0.labels == ("guitar", "rock", "piano")
    assert clip0.path == tmp_path / "mp3" / mtat_path(0, 0)


def test_mtat_check_files_lists_the_missing_mp3s(tmp_path):
    songs_mtat(tmp_path, n_songs=5)
    ds = open_dataset(f"mtat:{tmp_path}")
    for s in SPLITS:
        for item in ds.splits[s][1:]:
            item.path.parent.mkdir(parents=True, exist_ok=True)
            item.path.write_bytes(b"mp3")
    assert ds.check_files() == [ds.splits[s][0].path for s in SPLITS]


def test_mtat_reads_unquoted_fields_too(tmp_path):
    paths = [mtat_path(s, 0) for s in range(3)]
    make_mtat(tmp_path, ["a", "b"], np.array([[1, 0], [0, 1], [1, 1]]), paths, quoted=False)
    ds = open_dataset(f"mtat:{tmp_path}")
    assert ds.labels == ("a", "b") and sum(len(ds.splits[s]) for s in SPLITS) == 3


@pytest.mark.parametrize("folder", ["", "split"])
def test_mtat_official_split_files_are_used(tmp_path, folder):
    paths = [mtat_path(s, 0) for s in range(6)]
    make_mtat(tmp_path, ["x", "y", "z"], np.zeros((6, 3), dtype=int), paths)
    binary = np.array([[1, 0, 0], [0, 1, 1], [0, 1, 0], [0, 0, 0], [1, 1, 0], [0, 1, 0]])
    entries = [f"{i}\t{paths[5 - i]}" for i in range(6)]  # binary row i is clip 5 - i
    split_dir = tmp_path / folder
    write_mtat_split(
        split_dir, ["tagA", "tagB", "tagC"], binary, {"train": entries[:4], "valid": entries[4:5], "test": entries[5:]}
    )
    ds = open_dataset(f"mtat:{tmp_path}")
    assert ds.split_source == "official"
    assert ds.labels == ("tagB", "tagA", "tagC")  # 4, 2, 1 positives
    assert keys(ds, "train") == ["5", "4", "3", "2"] and keys(ds, "test") == ["0"]
    assert ds.splits["train"][1].labels == ("tagB", "tagC")
    assert ds.targets("test").tolist() == [[1, 0, 0]]


def test_mtat_missing_annotations_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match="annotations_final.csv: no such file"):
        open_dataset(f"mtat:{tmp_path}")


def test_mtat_bad_header_is_an_error(tmp_path):
    write_tsv(tmp_path / "annotations_final.csv", [["id", "a", "path"]])
    with pytest.raises(DatasetError, match="line 1: the header must be clip_id"):
        open_dataset(f"mtat:{tmp_path}")


def test_mtat_row_with_wrong_number_of_fields_names_the_line(tmp_path):
    songs_mtat(tmp_path, n_songs=3, clips=1)
    with open(tmp_path / "annotations_final.csv", "a") as f:
        f.write('"9"\t"1"\t"0"\t"x/y-1-2.mp3"\n')
    with pytest.raises(DatasetError, match=r"annotations_final.csv, line 5: 4 fields where the header has 5"):
        open_dataset(f"mtat:{tmp_path}")


def test_mtat_tag_value_not_0_or_1_names_the_line_and_tag(tmp_path):
    paths = [mtat_path(s, 0) for s in range(3)]
    make_mtat(tmp_path, ["a", "b"], np.array([[1, 0], [0, 2], [1, 1]]), paths)
    with pytest.raises(DatasetError, match=r"line 3: tag 'b' is '2', not 0 or 1"):
        open_dataset(f"mtat:{tmp_path}")


def test_mtat_duplicate_clip_id_is_an_error(tmp_path):
    songs_mtat(tmp_path, n_songs=3, clips=1)
    with open(tmp_path / "annotations_final.csv", "a") as f:
        f.write(f'"1"\t"1"\t"0"\t"0"\t"{mtat_path(7, 0)}"\n')
    with pytest.raises(DatasetError, match="line 5: clip_id 1 already on line 3"):
        open_dataset(f"mtat:{tmp_path}")


def test_mtat_split_path_not_in_annotations_is_an_error(tmp_path):
    paths = [mtat_path(s, 0) for s in range(3)]
    make_mtat(tmp_path, ["a"], np.ones((3, 1), dtype=int), paths)
    entries = {
        "train": [f"0\t{paths[0]}"],
        "valid": [f"1\t{paths[1]}", "2\tz/unknown-1-2.mp3"],
        "test": [f"2\t{paths[2]}"],
    }
    write_mtat_split(tmp_path, ["a"], np.ones((3, 1), dtype=int), entries)
    with pytest.raises(DatasetError, match=r"valid.npy\[1\]: z/unknown-1-2.mp3 is not in .*annotations_final.csv"):
        open_dataset(f"mtat:{tmp_path}")


def test_mtat_empty_split_file_is_an_error(tmp_path):
    paths = [mtat_path(s, 0) for s in range(3)]
    make_mtat(tmp_path, ["a"], np.ones((3, 1), dtype=int), paths)
    entries = {"train": [f"0\t{paths[0]}"], "valid": [f"1\t{paths[1]}"], "test": []}
    write_mtat_split(tmp_path, ["a"], np.ones((3, 1), dtype=int), entries)
    with pytest.raises(DatasetError, match=r"test.npy: empty split"):
        open_dataset(f"mtat:{tmp_path}")


def test_mtat_incomplete_split_files_are_an_error(tmp_path):
    songs_mtat(tmp_path, n_songs=3)
    (tmp_path / "split").mkdir()
    np.save(tmp_path / "split" / "train.npy", np.array(["0\tx.mp3"]))
    with pytest.raises(DatasetError, match="split files incomplete: valid.npy, test.npy, binary.npy, tags.npy missing"):
        open_dataset(f"mtat:{tmp_path}")


def test_mtat_with_fewer_than_three_songs_is_an_error(tmp_path):
    songs_mtat(tmp_path, n_songs=2, clips=3)
    with pytest.raises(DatasetError, match="2 song.*at least 3"):
        open_dataset(f"mtat:{tmp_path}")


# ----------------------------------------------------------------------------- MTG-Jamendo


def test_jamendo_genre_tags_are_multi_label_without_prefix(tmp_path):
    artists_jamendo(tmp_path)
    ds = open_dataset(f"jamendo:{tmp_path}")
    assert (ds.task, ds.labels) == ("multi-label", ("jazz", "pop", "rock", "electronic"))  # 20, 20, 20, 15
    first = next(item for s in SPLITS for item in ds.splits[s] if item.key == "track_0000000")
    assert first.labels == ("rock", "electronic") and first.group == "artist_000000"
    assert first.path == tmp_path / "00/0.mp3" and first.features is None
    targets = ds.targets("train")
    assert targets.dtype == np.float32 and targets.shape == (len(ds.splits["train"]), 4)


def test_jamendo_category_all_keeps_the_prefixes(tmp_path):
    artists_jamendo(tmp_path)
    ds = open_dataset(f"jamendo:{tmp_path}", category="all")
    assert ds.labels[0] == "instrument---guitar" and "genre---rock" in ds.labels


def test_jamendo_top_keeps_the_most_frequent_tags(tmp_path):
    artists_jamendo(tmp_path)
    ds = open_dataset(f"jamendo:{tmp_path}", category="all", top=2)
    assert ds.labels == ("instrument---guitar", "genre---jazz")


def test_jamendo_tracks_without_a_tag_of_the_category_are_left_out(tmp_path):
    rows = [jamendo_row(n, n, "genre---rock") for n in range(6)] + [jamendo_row(9, 9, "instrument---piano")]
    make_jamendo(tmp_path, rows, "autotagging.tsv")
    ds = open_dataset(f"jamendo:{tmp_path}")
    assert sum(len(ds.splits[s]) for s in SPLITS) == 6
    assert "1 track(s) without a kept genre tag left out" in ds.notes


def test_jamendo_artists_never_straddle_splits(tmp_path):
    artists_jamendo(tmp_path, n_artists=40)
    ds = open_dataset(f"jamendo:{tmp_path}", seed=7)
    artist_split: dict[str, str] = {}
    for split in SPLITS:
        for item in ds.splits[split]:
            assert artist_split.setdefault(item.group, split) == split
    assert [ds.summary()["splits"][s]["groups"] for s in SPLITS] == [32, 4, 4]
    assert ds.split_source == "deterministic 80/10/10 (seed 7)"


def test_jamendo_single_label_subset_is_balanced(tmp_path):
    single_label_jamendo(tmp_path, {"rock": 8, "pop": 5, "jazz": 4})
    ds = open_dataset(f"jamendo:{tmp_path}", single_label=True)
    assert (ds.task, ds.labels) == ("single-label", ("jazz", "pop", "rock"))
    counts = {label: 0 for label in ds.labels}
    for split in SPLITS:
        for label in ds.targets(split):
            counts[ds.labels[label]] += 1
    assert counts == {"jazz": 4, "pop": 4, "rock": 4}
    assert any("down-sampled to 4 tracks" in note for note in ds.notes)
    again = open_dataset(f"jamendo:{tmp_path}", single_label=True)
    assert all(keys(ds, s) == keys(again, s) for s in SPLITS)


def test_jamendo_single_label_without_balance_keeps_every_single_tag_track(tmp_path):
    single_label_jamendo(tmp_path, {"rock": 8, "pop": 5, "jazz": 4})
    ds = open_dataset(f"jamendo:{tmp_path}", single_label=True, balance=False)
    assert ds.labels == ("rock", "pop", "jazz")
    assert sum(len(ds.splits[s]) for s in SPLITS) == 17
    assert ds.targets("train").dtype == np.int64


def test_jamendo_single_label_class_under_three_tracks_is_an_error(tmp_path):
    single_label_jamendo(tmp_path, {"rock": 8, "pop": 5, "jazz": 2})
    with pytest.raises(DatasetError, match=r"fewer than 3 tracks: 'jazz' \(2\)"):
        open_dataset(f"jamendo:{tmp_path}", single_label=True)
    assert open_dataset(f"jamendo:{tmp_path}", single_label=True, top=2).labels == ("pop", "rock")


def test_jamendo_official_split_files_are_used(tmp_path):
    rows = [jamendo_row(n, n // 3, "genre---rock" if n % 2 else "genre---pop") for n in range(9)]
    make_jamendo(tmp_path, rows)
    split_dir = tmp_path / "splits" / "split-0"
    for name, part in (("train", rows[:5]), ("validation", rows[5:7]), ("test", rows[7:])):
        write_tsv(split_dir / f"autotagging_genre-{name}.tsv", [JAMENDO_HEADER, *part])
    ds = open_dataset(f"jamendo:{tmp_path}")
    assert ds.split_source == "official"
    assert keys(ds, "valid") == ["track_0000005", "track_0000006"]
    assert keys(ds, "test") == ["track_0000007", "track_0000008"]


def test_jamendo_asking_for_an_absent_official_split_is_an_error(tmp_path):
    artists_jamendo(tmp_path)
    (tmp_path / "splits" / "split-0").mkdir(parents=True)
    with pytest.raises(
        DatasetError, match=r"split-3: official split files missing: autotagging-train.tsv.*present: split-0"
    ):
        open_dataset(f"jamendo:{tmp_path}", split=3)


def test_jamendo_precomputed_melspecs_stand_in_for_absent_audio(tmp_path):
    rows = [jamendo_row(n, n, "genre---rock") for n in range(5)]
    make_jamendo(tmp_path, rows)
    for n in range(5):
        npy = tmp_path / "melspecs" / f"{n:02d}" / f"{n}.npy"
        npy.parent.mkdir(parents=True, exist_ok=True)
        np.save(npy, np.zeros((96, 1400), dtype=np.float32))
    ds = open_dataset(f"jamendo:{tmp_path}", features="melspecs")
    assert ds.features == PrecomputedMel(sample_rate=12000, n_fft=512, hop=256, n_mels=96)
    items = [item for s in SPLITS for item in ds.splits[s]]
    assert all(item.path is None and item.features.is_file() for item in items)
    assert ds.check_files() == []
    assert "precomputed mel-spectrograms: 96 mels, 12000 Hz" in ds.describe()


def test_jamendo_melspecs_with_audio_keep_both_paths(tmp_path):
    make_jamendo(tmp_path, [jamendo_row(n, n, "genre---rock") for n in range(3)])
    (tmp_path / "audio").mkdir()
    (tmp_path / "melspecs").mkdir()
    ds = open_dataset(f"jamendo:{tmp_path}", features="melspecs")
    item = ds.splits["train"][0]
    n = int(item.key.split("_")[1])
    assert item.path == tmp_path / "audio" / f"{n:02d}/{n}.mp3"
    assert item.features == tmp_path / "melspecs" / f"{n:02d}/{n}.npy"
    assert len(ds.check_files()) == 6


def test_jamendo_melspecs_asked_but_absent_is_an_error(tmp_path):
    make_jamendo(tmp_path, [jamendo_row(n, n, "genre---rock") for n in range(3)])
    with pytest.raises(DatasetError, match="no melspecs/ folder"):
        open_dataset(f"jamendo:{tmp_path}", features="melspecs")


def test_jamendo_wrong_header_is_an_error(tmp_path):
    write_tsv(tmp_path / "autotagging.tsv", [["TRACK", "ARTIST", "PATH"], jamendo_row(1, 1, "genre---rock")])
    with pytest.raises(DatasetError, match="autotagging.tsv, line 1: header 'TRACK ARTIST PATH', expected 'TRACK_ID"):
        open_dataset(f"jamendo:{tmp_path}")


def test_jamendo_row_with_fewer_than_six_fields_names_the_line(tmp_path):
    make_jamendo(tmp_path, [jamendo_row(1, 1, "genre---rock"), jamendo_row(2, 2)])
    with pytest.raises(DatasetError, match="autotagging_genre.tsv, line 3: 5 fields, expected at least 6"):
        open_dataset(f"jamendo:{tmp_path}")


def test_jamendo_tag_without_separator_is_an_error(tmp_path):
    make_jamendo(tmp_path, [jamendo_row(1, 1, "genre---rock"), jamendo_row(2, 2, "genre---pop", "rock")])
    with pytest.raises(DatasetError, match="line 3: tag 'rock' is not category---name"):
        open_dataset(f"jamendo:{tmp_path}")


def test_jamendo_unknown_category_lists_the_ones_present(tmp_path):
    artists_jamendo(tmp_path)
    with pytest.raises(DatasetError, match="no 'mood/theme' tags; categories present: genre, instrument"):
        open_dataset(f"jamendo:{tmp_path}", category="mood/theme")


def test_jamendo_missing_metadata_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match="no autotagging"):
        open_dataset(f"jamendo:{tmp_path}")


def test_jamendo_bad_features_option_is_an_error(tmp_path):
    artists_jamendo(tmp_path)
    with pytest.raises(DatasetError, match="features='mfcc'"):
        open_dataset(f"jamendo:{tmp_path}", features="mfcc")


# ----------------------------------------------------------------------------- summary and describe


def test_summary_is_json_and_describe_names_splits_and_labels(tmp_path):
    artists_jamendo(tmp_path)
    ds = open_dataset(f"jamendo:{tmp_path}")
    summary = json.loads(json.dumps(ds.summary()))
    assert summary["name"] == "jamendo" and summary["n_labels"] == 4 and summary["features"] is None
    assert sum(summary["splits"][s]["items"] for s in SPLITS) == 60
    assert summary["splits"]["train"]["label_counts"]["rock"] == int(
        ds.targets("train")[:, ds.labels.index("rock")].sum()
    )
    text = ds.describe()
    assert "jamendo dataset at" in text and "multi-label, 4 labels" in text and "train " in text and "jazz (20)" in text


# ----------------------------------------------------------------------------- origin/sample layout (queries:)


def make_layout(root: Path, labels: list[str], negatives: list[str] = (), versions: int = 1) -> Path:
    """One split folder of the origin/sample layout: per label ``versions`` origins and one
    sample at 1.0-2.5 s; per negative label a sample only (no origin: not in the library)."""
    for label in labels:
        for n in range(versions):
            write_tone(root / "origin" / label / f"{label}_{n}.wav")
        write_tone(root / "sample" / label / f"{label}_1000_2500.wav")
    for label in negatives:
        write_tone(root / "sample" / label / f"{label}_0_3000.wav")
    return root


def official_layout(root: Path) -> Path:
    """train/valid/test folders: six tracks to train, two each to valid and test, one negative in valid."""
    make_layout(root / "train", [f"tr{i}" for i in range(6)])
    make_layout(root / "valid", ["va0", "va1"], negatives=["gone"])
    make_layout(root / "test", ["te0", "te1"])
    return root


def test_queries_items_are_the_origins_unlabelled_and_grouped_by_track_label(tmp_path):
    official_layout(tmp_path)
    ds = open_dataset(f"queries:{tmp_path}")
    assert (ds.name, ds.task, ds.labels, ds.split_source) == ("queries", "unlabelled", (), "official")
    assert keys(ds, "valid") == ["valid/origin/va0/va0_0.wav", "valid/origin/va1/va1_0.wav"]
    item = ds.splits["train"][0]
    assert item == Item(key="train/origin/tr0/tr0_0.wav", path=tmp_path / item.key, labels=(), group="tr0")
    assert [len(ds.splits[s]) for s in SPLITS] == [6, 2, 2] and ds.notes == ()


def test_queries_keeps_each_splits_samples_with_label_span_and_negatives(tmp_path):
    official_layout(tmp_path)
    ds = open_dataset(f"queries:{tmp_path}")
    valid = ds.queries["valid"]
    assert [o.path for o in valid.origins] == [item.path for item in ds.splits["valid"]]
    positive = valid.positives[0]
    assert (positive.label, positive.start, positive.end) == ("va0", 1.0, 2.5)
    assert [(s.label, s.start, s.end) for s in valid.negatives] == [("gone", 0.0, 3.0)]
    assert [len(ds.queries[s].samples) for s in SPLITS] == [6, 3, 2]


def test_queries_summary_and_describe_count_the_samples(tmp_path):
    official_layout(tmp_path)
    ds = open_dataset(f"queries:{tmp_path}")
    valid = json.loads(json.dumps(ds.summary()))["splits"]["valid"]
    assert (valid["items"], valid["samples"], valid["negative_samples"]) == (2, 3, 1)
    assert "queries  train 6 (0 negative), valid 3 (1 negative), test 2 (0 negative) samples" in ds.describe()


def test_queries_other_datasets_have_no_queries(tmp_path):
    make_genres(tmp_path, {"a": 3})
    ds = open_dataset(f"folder:{tmp_path}")
    assert ds.queries is None and "samples" not in ds.summary()["splits"]["train"]


def test_queries_without_all_three_split_folders_are_split_by_label_keeping_versions_together(tmp_path):
    make_layout(tmp_path / "test", [f"t{i:02d}" for i in range(20)], versions=2)
    ds = open_dataset(f"queries:{tmp_path}", seed=4)
    assert ds.split_source == "deterministic 80/10/10 (seed 4)"
    assert ds.notes == ("split by track label from the layout's test/ (not all of train/, valid/, test/ there)",)
    split_of: dict[str, str] = {}
    for split in SPLITS:
        for item in ds.splits[split]:
            assert split_of.setdefault(item.group, split) == split
    assert [ds.summary()["splits"][s]["groups"] for s in SPLITS] == [16, 2, 2]
    assert [len(ds.splits[s]) for s in SPLITS] == [32, 4, 4]


def test_queries_own_split_is_deterministic_for_a_seed(tmp_path):
    make_layout(tmp_path / "test", [f"t{i:02d}" for i in range(20)])
    one, two = open_dataset(f"queries:{tmp_path}"), open_dataset(f"queries:{tmp_path}")
    assert all(keys(one, s) == keys(two, s) for s in SPLITS)
    other = open_dataset(f"queries:{tmp_path}", seed=1)
    assert any(keys(one, s) != keys(other, s) for s in SPLITS)


def test_queries_own_split_samples_follow_their_origins_and_negatives_are_split_by_label(tmp_path):
    make_layout(tmp_path / "a", [f"t{i:02d}" for i in range(10)], negatives=[f"n{i}" for i in range(10)])
    make_layout(tmp_path / "b", ["u0", "u1"], negatives=["t00"])  # t00's origin is in a/: a positive once pooled
    ds = open_dataset(f"queries:{tmp_path}")
    for split in SPLITS:
        queries, groups = ds.queries[split], {item.group for item in ds.splits[split]}
        assert queries.split == split and {o.label for o in queries.origins} == groups
        assert {s.label for s in queries.positives} == groups
        assert all(s.label.startswith("n") for s in queries.negatives)
    assert [len(ds.queries[s].negatives) for s in SPLITS] == [8, 1, 1]
    t00 = [s for split in SPLITS for s in ds.queries[split].samples if s.label == "t00"]
    assert len(t00) == 2 and all(s.in_library for s in t00)


def test_queries_root_may_be_one_split_folder(tmp_path):
    make_layout(tmp_path, ["x", "y", "z"])
    ds = open_dataset(f"queries:{tmp_path}")
    found = sorted(key for s in SPLITS for key in keys(ds, s))
    assert found == ["origin/x/x_0.wav", "origin/y/y_0.wav", "origin/z/z_0.wav"]
    assert "layout's ./" in ds.notes[0]


def test_queries_labels_in_several_split_folders_are_noted(tmp_path):
    official_layout(tmp_path)
    make_layout(tmp_path / "test", ["tr3"])
    ds = open_dataset(f"queries:{tmp_path}")
    assert ds.notes == ("1 track label(s) have origins in more than one split, e.g. tr3",)


def test_queries_split_folders_beside_train_valid_test_are_ignored_with_a_note(tmp_path):
    official_layout(tmp_path)
    make_layout(tmp_path / "extra", ["e0"])
    ds = open_dataset(f"queries:{tmp_path}")
    assert ds.split_source == "official" and "extra" not in {key.split("/")[0] for s in SPLITS for key in keys(ds, s)}
    assert ds.notes == ("split folder(s) other than train/valid/test ignored: extra",)


def test_queries_without_an_origin_folder_is_an_error(tmp_path):
    write_tone(tmp_path / "music" / "song.wav")
    with pytest.raises(DatasetError, match="no origin/ folder") as e:
        open_dataset(f"queries:{tmp_path}")
    assert e.value.where == str(tmp_path)


def test_queries_split_folder_with_samples_but_no_origin_folder_is_an_error(tmp_path):
    official_layout(tmp_path)
    shutil.rmtree(tmp_path / "test" / "origin")
    with pytest.raises(DatasetError, match="no origin/ directory") as e:
        open_dataset(f"queries:{tmp_path}")
    assert e.value.where == str(tmp_path / "test")


def test_queries_sample_name_without_start_and_end_is_an_error_naming_the_file(tmp_path):
    official_layout(tmp_path)
    bad = write_tone(tmp_path / "valid" / "sample" / "va0" / "va0_take2.wav")
    with pytest.raises(DatasetError, match=r"must end in _<start_ms>_<end_ms>") as e:
        open_dataset(f"queries:{tmp_path}")
    assert e.value.where == str(bad)


def test_queries_sample_ending_before_it_starts_is_an_error_naming_the_file(tmp_path):
    official_layout(tmp_path)
    bad = write_tone(tmp_path / "train" / "sample" / "tr1" / "tr1_5000_5000.wav")
    with pytest.raises(DatasetError, match="sample end 5000 ms is not after its start 5000 ms") as e:
        open_dataset(f"queries:{tmp_path}")
    assert e.value.where == str(bad)


def test_queries_split_folder_without_origin_audio_is_an_empty_split_error(tmp_path):
    official_layout(tmp_path)
    for wav in (tmp_path / "test" / "origin").rglob("*.wav"):
        wav.unlink()
    with pytest.raises(DatasetError, match="no origin audio files") as e:
        open_dataset(f"queries:{tmp_path}")
    assert e.value.where == str(tmp_path / "test" / "origin")


def test_queries_with_fewer_than_three_tracks_to_split_is_an_error(tmp_path):
    make_layout(tmp_path / "test", ["x", "y"], versions=3, negatives=["n0", "n1", "n2"])
    with pytest.raises(DatasetError, match="2 track label.*at least 3"):
        open_dataset(f"queries:{tmp_path}")
