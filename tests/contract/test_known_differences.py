"""The table of facts stays honest: each fact once, each section covered, each difference explained."""

from __future__ import annotations

import re
from collections import Counter

from .facts import FACTS, KNOWN_DIFFERENCES

# API.md's sections of parts A and B: each holds at least one fact or a written-down difference.
SECTIONS = ("A1", "A2", "A3", "A4", "A5", "A6", "B1", "B2", "B3")


def _sections(source: str) -> set[str]:
    return set(re.findall(r"\b[AB]\d\b", source))


def test_each_fact_is_stated_once_and_checked_somewhere() -> None:
    ids = Counter(fact.id for fact in FACTS)
    assert [i for i, n in ids.items() if n > 1] == []
    says = Counter(fact.says for fact in FACTS)
    assert [s for s, n in says.items() if n > 1] == []
    for fact in FACTS:
        assert _sections(fact.source), f"{fact.id}: source {fact.source!r} names no section of API.md A or B"
        assert fact.call is not None or fact.parse is not None, f"{fact.id} is checked nowhere"
        assert (fact.example is None) == (fact.parse is None), f"{fact.id}: an example needs a parse, and back"


def test_every_section_is_covered_by_a_fact_or_a_known_difference() -> None:
    covered = set().union(*(_sections(f.source) for f in FACTS), *(_sections(d.source) for d in KNOWN_DIFFERENCES))
    assert [s for s in SECTIONS if s not in covered] == []


def test_known_differences_give_reasons_and_name_real_checks() -> None:
    checked = {fact.id for fact in FACTS if fact.call is not None}
    for difference in KNOWN_DIFFERENCES:
        assert len(difference.reason) > 20, difference
        assert _sections(difference.source), difference
        if difference.fact is not None:
            # Its check runs as a strict xfail: honouring the fact one day fails the run until
            # the entry is removed from the list.
            assert difference.fact in checked, f"{difference.fact} names no fact with an HTTP check"
