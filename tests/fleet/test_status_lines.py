"""What ``evolink batch status`` says in words, from a snapshot (no database needed)."""

from __future__ import annotations

from typing import Any

from evolink_async.batch import FleetStatus


def _status(**states: int) -> FleetStatus:
    fields: dict[str, Any] = {"total": sum(states.values()), "states": states, "in_flight": 0, "max_in_flight": 8,
                              "credits_reserved": 6.0, "max_credits": None, "workers": [], "rate": 0.0, "window": 60.0}
    return FleetStatus(**fields)


def test_uncertain_inputs_are_counted_finished_and_said_so() -> None:
    first = _status(completed=6, uncertain=1).lines()[0]
    assert first.startswith("7/7 finished (1 uncertain), ")


def test_a_finished_batch_shows_done_not_a_rate_of_zero() -> None:
    first = _status(completed=7).lines()[0]
    assert first.endswith("credits 6, done")
    assert "/min" not in first


def test_a_running_batch_shows_its_rate_and_eta() -> None:
    status = FleetStatus(total=10, states={"completed": 4, "pending": 6}, in_flight=2, max_in_flight=8,
                         credits_reserved=4.0, max_credits=None, workers=[], rate=0.1, window=60.0)  # fmt: skip
    assert status.lines()[0].endswith("6.0/min, ETA 60 s")
