"""Quiet storms: a repeated warning is one WARNING line, then counted; -v (DEBUG) sees each."""

from __future__ import annotations

import logging

import pytest

from vtwait.core.quiet import RepeatedWarnings

LOGGER = "tests.quiet"


def lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == level]


@pytest.fixture
def warnings(caplog: pytest.LogCaptureFixture) -> RepeatedWarnings:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    return RepeatedWarnings(logging.getLogger(LOGGER), interval=10.0)


def test_a_storm_of_ten_thousand_is_one_line_then_one_summary_per_interval(
        warnings: RepeatedWarnings, caplog: pytest.LogCaptureFixture) -> None:
    for i in range(10_000):  # 10,000 faults over 25 s of the caller's clock
        warnings.warning("HTTP 503", i * 0.0025, "transient fault (%s); retrying in %.3f s",
                         "HTTP 503", 0.5)
    shown = lines(caplog, logging.WARNING)
    assert shown[0] == "transient fault (HTTP 503); retrying in 0.500 s"
    assert len(shown) == 3  # the first, then one summary at 10 s and one at 20 s
    assert "and 4000 more like it in 10.0 s" in shown[1]
    assert len(lines(caplog, logging.DEBUG)) == 10_000 - 3  # nothing hidden from -v


def test_close_says_what_the_storm_still_holds(warnings: RepeatedWarnings,
                                               caplog: pytest.LogCaptureFixture) -> None:
    for i in range(5):
        warnings.warning("HTTP 502", float(i), "fault %s", "HTTP 502")
    warnings.flush(5.0)
    shown = lines(caplog, logging.WARNING)
    assert shown == ["fault HTTP 502", "fault HTTP 502 (and 4 more like it in 5.0 s, each logged "
                     "at DEBUG)"]
    warnings.flush(6.0)  # nothing more to say
    assert len(lines(caplog, logging.WARNING)) == 2


def test_kinds_are_counted_apart_and_a_fault_after_a_quiet_spell_is_said_in_full(
        warnings: RepeatedWarnings, caplog: pytest.LogCaptureFixture) -> None:
    warnings.warning("HTTP 503", 0.0, "fault %s", "HTTP 503")
    warnings.warning("ConnectionError", 1.0, "fault %s", "ConnectionError")
    warnings.warning("HTTP 503", 100.0, "fault %s", "HTTP 503")
    assert lines(caplog, logging.WARNING) == ["fault HTTP 503", "fault ConnectionError",
                                              "fault HTTP 503"]
    assert lines(caplog, logging.DEBUG) == []


def test_the_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval"):
        RepeatedWarnings(logging.getLogger(LOGGER), interval=0)
