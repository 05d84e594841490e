"""Count options (``--top``, ``-k``) take whole numbers of at least 1; anything else is a usage error."""

import pytest

from tuneseek.cli import main

COUNT_OPTIONS = [
    ["identify", "clip.wav", "--top"],
    ["identify", "clip.wav", "-k"],
    ["show", "1", "--top"],
    ["search", "calm piano", "-k"],
    ["similar", "1", "-k"],
    ["tag", "song.wav", "--top"],
]


@pytest.mark.parametrize("command", COUNT_OPTIONS, ids=lambda c: f"{c[0]} {c[-1]}")
@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_count_options_below_one_or_not_a_number_exit_2_with_a_usage_message(command, value, capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        main(["--library", str(tmp_path / "lib"), *command, value])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: tuneseek") and "Traceback" not in err
    assert f"argument {command[-1]}" in err or "argument --top/-k" in err
    assert ("must be at least 1" in err) if value != "two" else ("expected a whole number, got 'two'" in err)
    assert not (tmp_path / "lib").exists()  # refused before anything ran
