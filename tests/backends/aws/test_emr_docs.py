"""docs/backends/emr.md tells the truth: the same table checks tests/test_docs.py makes."""

from __future__ import annotations

from pathlib import Path

import attrs

from sessionkit import SessionConfig
from sessionkit.backends.aws.emr import EmrBackend
from tests.test_docs import code_name, marked_table

PAGE = Path(__file__).resolve().parents[3] / "docs" / "backends" / "emr.md"


def test_the_state_table_matches_the_backend() -> None:
    rows = marked_table(PAGE.read_text(encoding="utf-8"), "state-table")
    documented = [(code_name(native), code_name(state)) for native, state in rows]
    expected = {native: state.name for native, state in EmrBackend.state_map.items()}
    assert dict(documented) == expected
    assert len(documented) == len(EmrBackend.state_map)


def test_the_translation_table_matches_the_backend() -> None:
    rows = marked_table(PAGE.read_text(encoding="utf-8"), "translation-table")
    fields = [code_name(field) for field, _ in rows]
    assert sorted(fields) == sorted(a.name for a in attrs.fields(SessionConfig))
    supported = {
        code_name(field) for field, target in rows if not target.lower().startswith("not supported")
    }
    assert supported == set(EmrBackend.supported_fields) | {"options"}
