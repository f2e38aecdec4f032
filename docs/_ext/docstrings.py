"""A griffe extension that makes sessionkit's docstrings render well in mkdocstrings.

The docstrings are Google style but keep two reStructuredText habits that Markdown does not
understand: Sphinx roles (``:class:`~sessionkit.SessionInfo```) and bare doctest blocks in
module docstrings. This rewrites both at load time, so the sources stay as they are.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(
    r":(?:class|func|meth|attr|data|exc|mod|obj|const):`(?P<short>~?)(?P<target>[^`]+)`"
)


def _qualify(obj: griffe.Object, target: str) -> str | None:
    """Find the full path of a sessionkit name as written in a docstring, if it is one."""
    if target.startswith("sessionkit"):
        return target
    head = target.split(".", 1)[0]
    scope: Any = obj
    while scope is not None:
        members = getattr(scope, "members", {})
        if head in members:
            return f"{scope.path}.{target}"
        scope = scope.parent
    return None


def _roles(obj: griffe.Object, text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        target = match["target"]
        title = target.rsplit(".", 1)[-1] if match["short"] else target
        path = _qualify(obj, target)
        if path is None:
            # Outside sessionkit (datetime, botocore): no inventory is loaded, so plain code.
            return f"`{title}`"
        # "optional": a link when the target is rendered somewhere, plain code otherwise.
        return f'<autoref identifier="{path}" optional><code>{title}</code></autoref>'

    return _ROLE.sub(replace, text)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _doctests(text: str) -> str:
    """Fence ``>>>`` blocks (output included, up to a blank line) as pycon.

    griffe renders an ``Examples:`` section's doctests itself; anywhere else (a module
    docstring, an ``Example:`` admonition) they would become a run-on paragraph.
    """
    lines = text.splitlines()
    out: list[str] = []
    examples_at: int | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.strip():
            if examples_at is not None and _indent(line) <= examples_at:
                examples_at = None
            if line.strip() == "Examples:":
                examples_at = _indent(line)
        if line.lstrip().startswith(">>>") and examples_at is None:
            margin = line[: _indent(line)]
            block = []
            while index < len(lines) and lines[index].strip():
                block.append(lines[index])
                index += 1
            out.extend([f"{margin}```pycon", *block, f"{margin}```"])
            continue
        # reST's "text::" introduces an indented literal block, which Markdown already shows
        # as code; only the doubled colon has to go.
        out.append(line[:-1] if line.endswith("::") else line)
        index += 1
    return "\n".join(out)


class SessionkitDocstrings(griffe.Extension):
    """Rewrite Sphinx roles and bare doctests in every loaded docstring."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite one object's docstring once the tree is complete."""
        if obj.docstring is not None:
            obj.docstring.value = _doctests(_roles(obj, obj.docstring.value))
