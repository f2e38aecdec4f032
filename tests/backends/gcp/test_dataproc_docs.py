"""docs/backends/dataproc.md agrees with the backend: its tables, and its example runs."""

from __future__ import annotations

import re
from pathlib import Path

import attrs

from sessionkit import SessionConfig
from sessionkit.backends.gcp.dataproc import DataprocBackend

PAGE = Path(__file__).resolve().parents[3] / "docs" / "backends" / "dataproc.md"


def _table(marker: str) -> list[tuple[str, str]]:
    text = PAGE.read_text(encoding="utf-8")
    match = re.search(rf"<!-- {marker} -->\n(.*?)\n<!-- /{marker} -->", text, re.S)
    assert match, f"no {marker} block"
    rows = []
    for line in match.group(1).strip().splitlines()[2:]:
        left, right = (cell.strip() for cell in line.strip().strip("|").split("|"))
        rows.append((left.strip("`"), right))
    return rows


def test_state_table_is_the_state_map() -> None:
    documented = {native: state.strip("`") for native, state in _table("state-table")}
    assert documented == {native: s.name for native, s in DataprocBackend.state_map.items()}


def test_translation_table_lists_every_field_and_what_is_supported() -> None:
    rows = _table("translation-table")
    assert sorted(f for f, _ in rows) == sorted(a.name for a in attrs.fields(SessionConfig))
    supported = {f for f, target in rows if not target.startswith("not supported")}
    assert supported == set(DataprocBackend.supported_fields)


def test_example_runs() -> None:
    text = PAGE.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, str(PAGE), "exec"), {})
