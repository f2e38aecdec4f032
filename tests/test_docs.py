"""The documentation tells the truth: its tables match the code and its examples run.

- Each backend page's state table equals the backend's ``state_map``, and its translation
  table has one row per ``SessionConfig`` field, marking exactly the unsupported ones.
- Every ```python block in ``docs/**/*.md`` and ``README.md`` runs, file by file in order in one
  namespace, in a temporary directory, with the network cut off. ``<!-- no-run -->`` on the line
  before a block skips it (only for code that needs a real AWS account).
- Every ``::: name`` of the API reference imports, and every public name is documented there.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import shlex
import socket
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

import sessionkit
from sessionkit import SessionConfig, SessionState, registry

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

#: Every built-in backend (the registry's one table) to the module implementing it; each has
#: its page docs/backends/<name>.md.
BACKENDS = {name: path.partition(":")[0] for name, (path, _) in registry.BUILT_IN_BACKENDS.items()}

NO_RUN = "<!-- no-run -->"


# ----------------------------------------------------------------------------- markdown parsing


def marked_table(text: str, marker: str, columns: int = 2) -> list[tuple[str, ...]]:
    """The body rows of the table between ``<!-- marker -->`` and ``<!-- /marker -->``."""
    match = re.search(rf"<!-- {marker} -->\n(.*?)\n<!-- /{marker} -->", text, re.S)
    if match is None:
        raise AssertionError(f"no <!-- {marker} --> ... <!-- /{marker} --> block")
    lines = [line.strip() for line in match.group(1).strip().splitlines()]
    assert len(lines) >= 2 and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", lines[1]), (
        f"the {marker} block must be one Markdown table with a header row"
    )
    rows = []
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert len(cells) == columns, f"{marker}: expected {columns} columns in {line!r}"
        rows.append(tuple(cells))
    return rows


def code_name(cell: str) -> str:
    """The name in a cell written as one code span, e.g. ``\\`PROVISIONING\\```."""
    match = re.fullmatch(r"`([^`]+)`", cell)
    assert match, f"expected a single `code` name, got {cell!r}"
    return match.group(1)


@attrs.frozen
class Block:
    """A fenced code block of a Markdown file."""

    number: int
    line: int
    language: str
    code: str
    no_run: bool


_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")


def code_blocks(text: str) -> list[Block]:
    """Every fenced block, numbered from 1 in order, with its language and no-run mark."""
    lines = text.splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        language = (opening["info"].split() or [""])[0].lower()
        previous = next((s.strip() for s in reversed(lines[:index]) if s.strip()), "")
        body: list[str] = []
        start = index + 1
        index += 1
        while index < len(lines) and lines[index].strip() != fence:
            line = lines[index]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            index += 1
        index += 1
        blocks.append(
            Block(
                number=len(blocks) + 1,
                line=start,
                language=language,
                code="\n".join(body) + "\n",
                no_run=previous == NO_RUN,
            )
        )
    return blocks


def documented_files() -> list[Path]:
    files = sorted(DOCS.rglob("*.md"))
    readme = ROOT / "README.md"
    if readme.exists():
        files.append(readme)
    return files


# ----------------------------------------------------------------------------- 1. backend tables


def _backend(name: str) -> tuple[str, Any]:
    page = DOCS / "backends" / f"{name}.md"
    assert page.exists(), f"the {name} backend has no page {page.relative_to(ROOT)}"
    return page.read_text(encoding="utf-8"), registry.get_backend(name)


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_state_table_matches_the_backend(name: str) -> None:
    text, backend = _backend(name)
    rows = marked_table(text, "state-table")
    documented = [(code_name(native), code_name(state)) for native, state in rows]
    natives = [native for native, _ in documented]
    assert len(natives) == len(set(natives)), f"{name}: a native state is listed twice"
    assert dict(documented) == {
        native: state.name for native, state in backend.state_map.items()
    }, f"docs/backends/{name}.md state-table differs from {backend.__name__}.state_map"


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_translation_table_matches_the_backend(name: str) -> None:
    text, backend = _backend(name)
    rows = marked_table(text, "translation-table")
    fields = [code_name(field) for field, _ in rows]
    expected = [a.name for a in attrs.fields(SessionConfig)]
    assert sorted(fields) == sorted(expected), (
        f"docs/backends/{name}.md translation-table must have exactly one row per "
        f"SessionConfig field: missing {sorted(set(expected) - set(fields))}, "
        f"extra or repeated {sorted(f for f in fields if fields.count(f) > 1 or f not in expected)}"
    )
    supported = {
        code_name(field) for field, target in rows if not target.lower().startswith("not supported")
    }
    code = set(backend.supported_fields) | {"options"}
    assert supported == code, (
        f"docs/backends/{name}.md marks {sorted(set(expected) - supported)} as not supported, "
        f"but {backend.__name__} does not support {sorted(set(expected) - code)}"
    )


def test_support_matrix_matches_every_backend() -> None:
    text = (DOCS / "backends" / "index.md").read_text(encoding="utf-8")
    header = re.search(r"<!-- support-matrix -->\n(.*)\n", text)
    assert header, "no <!-- support-matrix --> table"
    columns = [cell.strip() for cell in header.group(1).strip().strip("|").split("|")][1:]
    assert sorted(columns) == sorted(BACKENDS), "one column per built-in backend"
    rows = marked_table(text, "support-matrix", columns=1 + len(columns))
    assert sorted(code_name(row[0]) for row in rows) == sorted(
        a.name for a in attrs.fields(SessionConfig)
    )
    for index, name in enumerate(columns, start=1):
        documented = {code_name(row[0]) for row in rows if row[index] == "✓"}
        assert documented == set(registry.get_backend(name).supported_fields) | {"options"}, (
            f"docs/backends/index.md: the {name} column differs from the backend"
        )


def test_the_glue_page_lists_every_state_in_botocores_model() -> None:
    """Checked against the service model too, not only against the code."""
    import botocore.session

    text, _ = _backend("glue")
    model = botocore.session.get_session().get_service_model("glue")
    documented = {code_name(native) for native, _ in marked_table(text, "state-table")}
    assert documented == set(model.shape_for("SessionStatus").enum)


def test_state_groups_table_matches_the_enum() -> None:
    text = (DOCS / "concepts.md").read_text(encoding="utf-8")
    rows = marked_table(text, "state-groups", columns=5)
    documented = {
        code_name(state): tuple(mark == "✓" for mark in marks) for state, _, *marks in rows
    }
    assert documented == {
        state.name: (state.is_alive, state.is_terminal, state.accepts_work)
        for state in SessionState
    }


# ----------------------------------------------------------------------------- 2. examples run


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any attempt to open a connection fail loudly instead of reaching AWS."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OSError("the docs examples must not use the network (use sessionkit.testing)")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "docs-examples")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "docs-examples")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def _runnable(path: Path) -> Iterator[Block]:
    for block in code_blocks(path.read_text(encoding="utf-8")):
        if block.language in ("python", "py") and not block.no_run:
            yield block


def run_examples(path: Path, name: str) -> int:
    """Run the file's python blocks in order in one namespace; fail naming the block.

    Returns:
        How many blocks ran.
    """
    blocks = list(_runnable(path))
    namespace: dict[str, Any] = {"__name__": f"docs_example_{path.stem.replace('-', '_')}"}
    for block in blocks:
        try:
            exec(compile(block.code, f"{name}:block{block.number}", "exec"), namespace)
        except Exception as exc:
            # Skip this function's own frame: the traceback starts in the example.
            trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__.tb_next))
            failure = f"{name}, python block {block.number} (line {block.line}) failed:\n{trace}"
        else:
            continue
        pytest.fail(failure, pytrace=False)
    return len(blocks)


@pytest.mark.parametrize(
    "path", documented_files(), ids=lambda p: str(p.relative_to(ROOT)).replace("/", ":")
)
def test_python_examples_run(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    monkeypatch.chdir(tmp_path)
    if run_examples(path, str(path.relative_to(ROOT))) == 0:
        pytest.skip("no runnable python block")


def test_code_block_parser_sees_languages_and_no_run_marks() -> None:
    text = (
        "Intro\n\n```python\nx = 1\n```\n\n<!-- no-run -->\n```python\nboom()\n```\n\n"
        "```pycon\n>>> 1\n```\n\n- item\n\n    ```python\n    y = x + 1\n    ```\n"
    )
    blocks = code_blocks(text)
    assert [(b.number, b.language, b.no_run) for b in blocks] == [
        (1, "python", False),
        (2, "python", True),
        (3, "pycon", False),
        (4, "python", False),
    ]
    assert blocks[3].code == "y = x + 1\n"


def test_examples_share_a_namespace_and_a_failure_names_its_block(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```python\nanswer = 42\n```\n\n<!-- no-run -->\n```python\nraise SystemExit\n```\n\n"
        "```python\nassert answer == 41, 'wrong answer'\n```\n"
    )
    with pytest.raises(pytest.fail.Exception, match=r"page.md, python block 3 \(line 10\)"):
        run_examples(page, "page.md")
    page.write_text("```python\nanswer = 42\n```\n\n```python\nassert answer == 42\n```\n")
    assert run_examples(page, "page.md") == 2


# ----------------------------------------------------------------------------- the CLI page


def _cli_parser() -> Any:
    from sessionkit.cli import build_parser

    return build_parser()


def documented_commands() -> list[str]:
    """Every ``$ sessionkit ...`` line of the console blocks in docs/cli.md, joined over ``\\``."""
    commands = []
    for block in code_blocks((DOCS / "cli.md").read_text(encoding="utf-8")):
        if block.language != "console":
            continue
        pending = ""
        for line in block.code.splitlines():
            if line.startswith("$ ") or pending:
                pending += line.removeprefix("$ ").strip()
                if pending.endswith("\\"):
                    pending = pending[:-1]
                    continue
                commands.append(pending)
                pending = ""
    return commands


def test_documented_command_lines_parse() -> None:
    parser = _cli_parser()
    commands = documented_commands()
    assert len(commands) >= 10
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == "sessionkit", command
        try:
            parser.parse_args(argv[1:])
        except SystemExit:
            pytest.fail(f"docs/cli.md shows a command line sessionkit rejects: {command}")


def test_every_command_and_option_is_documented() -> None:
    import argparse

    parser = _cli_parser()
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    commands = next(
        action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
    )
    # The backends' own options come from their cli_fields; their pages document them.
    from sessionkit.cli import backends

    contributed = {backends.flag(f) for row in backends.rows() for f in row.cli_fields}
    missing = []
    for name, subparser in commands.choices.items():
        if f"## `sessionkit {name}`" not in text:
            missing.append(f"a '## `sessionkit {name}`' section")
        for action in subparser._actions:
            for option in action.option_strings:
                if option in contributed or not option.startswith("--") or option == "--help":
                    continue
                if f"`{option}" not in text:
                    missing.append(f"{name} {option}")
    assert not missing, f"docs/cli.md does not document: {', '.join(missing)}"


# ----------------------------------------------------------------------------- 3. API reference


def reference_targets() -> list[str]:
    text = (DOCS / "reference.md").read_text(encoding="utf-8")
    return re.findall(r"^::: ([\w.]+)\s*$", text, re.M)


def resolve(target: str) -> Any:
    """Import a dotted name: a module, or an attribute of the longest importable prefix."""
    parts = target.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value: Any = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            value = getattr(value, attribute)
        return value
    raise ImportError(target)


@pytest.mark.parametrize("target", reference_targets())
def test_reference_targets_import(target: str) -> None:
    assert resolve(target) is not None


@pytest.mark.parametrize(
    "module", ["sessionkit", "sessionkit.errors", "sessionkit.fleet", "sessionkit.testing"]
)
def test_every_public_name_is_in_the_reference(module: str) -> None:
    targets = reference_targets()
    documented: list[Any] = []
    for target in targets:
        value = resolve(target)
        documented.append(value)
        # A module directive documents the module's public names.
        if isinstance(value, type(sessionkit)):
            documented.extend(getattr(value, name) for name in getattr(value, "__all__", ()))
    public = importlib.import_module(module)
    missing = [
        name
        for name in public.__all__
        if name != "__version__" and not any(getattr(public, name) is value for value in documented)
    ]
    assert not missing, f"docs/reference.md does not document {module}.{missing}"
