"""The command line's lifecycle parts, in process: the download display (tqdm bar, plain line,
nothing when piped), the batch state file, and the usage errors of --state and --download.
Runs against a server are in tests/e2e/test_job_lifecycle_live.py."""

from __future__ import annotations

import io
import sys

import pytest

from tests.client.test_cli import Terminal
from vtwait.client.cli import EXIT_USAGE, DownloadBar, load_state, main, save_state
from vtwait.core.batch_state import BatchState
from vtwait.core.download import DownloadProgress
from vtwait.core.errors import ProtocolError


def test_download_bar_on_a_terminal_draws_bytes():
    """On a terminal with tqdm: one bar in bytes that reaches the total."""
    pytest.importorskip("tqdm")
    screen = Terminal()
    bar = DownloadBar(screen)
    bar(DownloadProgress(written=1000, total=4000, received=1000, resumes=0))
    bar(DownloadProgress(written=4000, total=4000, received=4500, resumes=1))
    bar.close()
    assert bar.bar is not None and bar.bar.n == 4000
    assert "4.00k/4.00k" in screen.getvalue()


def test_download_bar_without_tqdm_or_piped(monkeypatch):
    """Without tqdm a terminal gets one updating line; piped, nothing is drawn."""
    monkeypatch.setitem(sys.modules, "tqdm", None)
    screen = Terminal()
    bar = DownloadBar(screen)
    bar(DownloadProgress(written=10, total=20, received=10, resumes=0))
    bar.close()
    assert screen.getvalue() == "\r\033[Kdownloading 10/20 bytes\n"
    piped = io.StringIO()
    quiet = DownloadBar(piped)
    quiet(DownloadProgress(written=10, total=20, received=10, resumes=0))
    quiet.close()
    assert piped.getvalue() == ""


def test_the_state_file_round_trips_and_a_bad_one_is_refused(tmp_path):
    """save_state writes atomically (no temporary file left); load_state reads it back, None
    without a file, ProtocolError for a file that is not a batch state."""
    path = tmp_path / "batch.json"
    assert load_state(str(path)) is None
    save_state(BatchState.new(["a", "b"]), str(path))
    assert [p.name for p in tmp_path.iterdir()] == ["batch.json"]
    assert load_state(str(path)).pending == ["a", "b"]
    path.write_text("{not json")
    with pytest.raises(ProtocolError):
        load_state(str(path))


@pytest.mark.parametrize("argv", [["--state", "x.json"], ["--count", "2", "--download", "o"],
                                  ["--job-id", "a", "--job-id", "b", "--download", "o"]])
def test_state_and_download_usage_errors(argv, capsys):
    """--state needs --count; --download takes one job: exit 2 with one clear line."""
    with pytest.raises(SystemExit) as exited:
        main(["--base-url", "http://127.0.0.1:9", *argv])
    assert exited.value.code == EXIT_USAGE
    assert "error:" in capsys.readouterr().err


def test_a_bad_state_file_exits_2(tmp_path, capsys):
    """A --state file that is not a batch state: exit 2 naming the file, before any request."""
    path = tmp_path / "batch.json"
    path.write_text('{"version": 99}')
    code = main(["--base-url", "http://127.0.0.1:9", "--count", "1", "--state", str(path)])
    assert code == EXIT_USAGE
    assert str(path) in capsys.readouterr().err
