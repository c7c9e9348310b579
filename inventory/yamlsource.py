"""Read YAML while remembering the line of every value, so errors can point at it."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

try:  # libyaml is ~10x faster; the pure-Python loader gives the same result
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

PathKey = tuple[str | int, ...]


class YamlSyntaxError(Exception):
    def __init__(self, message: str, line: int | None):
        super().__init__(message)
        self.line = line


@dataclass
class YamlDocument:
    file: Path
    data: Any
    lines: dict[PathKey, int] = field(default_factory=dict)

    def line_of(self, path: PathKey) -> int | None:
        """Line of the deepest known prefix of `path` (a missing key points at its parent)."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None


def _index_lines(node: yaml.Node, path: PathKey, lines: dict[PathKey, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[path + (key,)] = key_node.start_mark.line + 1
            _index_lines(value_node, path + (key,), lines)
            lines[path + (key,)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, path + (index,), lines)


def _duplicate_keys(node: yaml.Node, path: PathKey) -> list[tuple[PathKey, int]]:
    found: list[tuple[PathKey, int]] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if key_node.value in seen:
                found.append((path + (key_node.value,), key_node.start_mark.line + 1))
            seen.add(key_node.value)
            found.extend(_duplicate_keys(value_node, path + (key_node.value,)))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found.extend(_duplicate_keys(item, path + (index,)))
    return found


def load_yaml(file: Path) -> YamlDocument:
    """Parse one YAML file; raise YamlSyntaxError with the line on malformed input.

    PyYAML silently keeps the last of two equal keys; a reviewed request with a key
    written twice is almost always a mistake, so it is reported as a syntax error.
    """
    text = file.read_text(encoding="utf-8")
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDocument(file, None)
        duplicates = _duplicate_keys(node, ())
        if duplicates:
            key, line = duplicates[0]
            raise YamlSyntaxError(f"key '{key[-1]}' appears twice in the same mapping", line)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlSyntaxError(
            f"YAML syntax error: {exc.problem or exc}", mark.line + 1 if mark else None
        ) from None
    finally:
        loader.dispose()
    lines: dict[PathKey, int] = {}
    _index_lines(node, (), lines)
    return YamlDocument(file, data, lines)
