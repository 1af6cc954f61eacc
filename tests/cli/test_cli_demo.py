"""``evolink demo``'s last line: a path a user can paste into a shell as it is."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from evolink_async.cli import main


@pytest.mark.parametrize("folder", ["my demo", "it's here", "plain"])
def test_the_done_line_quotes_the_results_folder_for_a_shell(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], folder: str
) -> None:
    code = main(["demo", "--dir", str(tmp_path / folder), "--count", "1", "--time-scale", "0.01"])
    shown = capsys.readouterr()
    assert code == 0, shown.err
    (done,) = [line for line in (shown.out + shown.err).splitlines() if line.startswith("done: open ")]
    words = shlex.split(done.removeprefix("done: open "))
    results = tmp_path / folder / "results"
    assert words[0] == str(results)  # one shell word, whatever the folder's name
    assert (Path(words[0]) / "summary.json").is_file()
