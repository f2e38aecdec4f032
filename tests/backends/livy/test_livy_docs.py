"""docs/backends/livy.md tells the truth: its tables equal the backend's."""

from __future__ import annotations

import re
from pathlib import Path

import attrs

from sessionkit import SessionConfig
from sessionkit.backends.livy.backend import LivyBackend

PAGE = Path(__file__).resolve().parents[3] / "docs" / "backends" / "livy.md"


def _rows(marker: str) -> list[tuple[str, str]]:
    text = PAGE.read_text(encoding="utf-8")
    match = re.search(rf"<!-- {marker} -->\n(.*?)\n<!-- /{marker} -->", text, re.S)
    assert match is not None, f"no {marker} block in {PAGE.name}"
    rows = []
    for line in match.group(1).strip().splitlines()[2:]:
        first, second = (cell.strip() for cell in line.strip().strip("|").split("|", 1))
        rows.append((first.strip("`"), second))
    return rows


def test_state_table_equals_the_state_map() -> None:
    documented = {native: state.strip("`") for native, state in _rows("state-table")}
    assert documented == {native: state.value for native, state in LivyBackend.state_map.items()}


def test_translation_table_marks_exactly_the_unsupported_fields() -> None:
    rows = _rows("translation-table")
    assert sorted(field for field, _ in rows) == sorted(a.name for a in attrs.fields(SessionConfig))
    supported = {field for field, target in rows if not target.startswith("not supported")}
    assert supported == set(LivyBackend.supported_fields) | {"options"}
