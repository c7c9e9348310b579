"""Read YAML while remembering the line of every value, so errors can point at it.

Inventory files are written by people and arrive through reviews, so a file may be anything.
Reading one costs bounded time whatever it holds (size, values once aliases are expanded,
nesting), and every way it can fail becomes a `YamlFileError` carrying the 1-based line an
editor shows — never an exception from PyYAML, and never a walk over an exploding tree.
"""
from __future__ import annotations

import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError

try:  # libyaml is ~10x faster; the pure-Python loader gives the same result
    from yaml import CSafeLoader as _SafeLoader
    _OFFSETS_IN_BYTES = True  # libyaml reports reader errors at a UTF-8 byte offset
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]
    _OFFSETS_IN_BYTES = False

PathKey = tuple[str | int, ...]

MAX_FILE_BYTES = 1024 * 1024
"""Checked before parsing. The largest file tricenter writes, the IPAM lock of a generated
1,000-system / 10,000-VM inventory, is 170 KB; the sample's largest file is 5 KB."""

MAX_VALUES = 50_000
"""Values (scalars, lists, mappings) in one file, counted as written and again once aliases
are expanded. A 1 MiB IPAM lock holds ~35,000; a "billion laughs" file of a few hundred
bytes expands to billions, and is refused on this count before anything walks it. The
bound also keeps a 1 MiB file of tiny values well under a second."""

MAX_SCALAR_CHARS = 10_000
"""Characters in one value; the longest in the sample and scenarios is ~500. PyYAML turns a
YAML 1.1 sexagesimal number ('1:1:1:…') into an int in quadratic time: 10 s CPU for
a 400 KB one, about a minute for 1 MiB."""

MAX_DEPTH = 64
"""Nesting of lists and mappings; inventory files nest fewer than 10 deep. Keeps the
recursive walks that follow (line index, schema check) far from Python's recursion limit."""


class YamlFileError(Exception):
    """A file that cannot be read as YAML; the message says why and how to fix it."""

    def __init__(self, message: str, line: int | None = None):
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


class _Loader(_SafeLoader):  # type: ignore[misc,valid-type]
    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """Give a line to what SafeConstructor lets escape: ValueError for `2024-13-01` or
        `!!int x`, IndexError for an empty `!!int` … (found by the property test)."""
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except Exception as exc:  # noqa: BLE001 — any failure here is a value in the file
            raise ConstructorError(None, None, f"cannot read this value ({exc})",
                                   node.start_mark) from None


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _nested(node: yaml.Node) -> Iterator[yaml.CollectionNode]:
    """Lists and mappings directly inside `node` (keys are checked to be scalars first)."""
    items = (value for _, value in node.value) if isinstance(node, yaml.MappingNode) \
        else node.value
    return (item for item in items if isinstance(item, yaml.CollectionNode))


def _written_values(node: yaml.CollectionNode) -> int:
    return 1 + len(node.value) * (2 if isinstance(node, yaml.MappingNode) else 1)


def _check_keys(node: yaml.MappingNode) -> None:
    """Keys must be scalars (a list key crashes every walk) and written once.

    PyYAML silently keeps the last of two equal keys; a reviewed request with a key
    written twice is almost always a mistake.
    """
    seen: dict[tuple[str, str], int] = {}
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode):
            kind = "list" if isinstance(key, yaml.SequenceNode) else "mapping"
            raise YamlFileError(f"a mapping key is a {kind}; keys must be plain names — write "
                                "the key as a name, or quote it", _line(key))
        identity = (key.tag, key.value)
        if identity in seen:
            raise YamlFileError(f"key '{key.value}' appears twice in the same mapping (first on "
                                f"line {seen[identity]}) — keep one", _line(key))
        seen[identity] = _line(key)


@dataclass
class _Frame:
    node: yaml.CollectionNode
    pending: Iterator[yaml.CollectionNode]
    values: int  # expanded values below and including node, summed as children finish
    height: int = 1


def _enter(node: yaml.CollectionNode) -> _Frame:
    if isinstance(node, yaml.MappingNode):
        _check_keys(node)
    return _Frame(node, _nested(node), _written_values(node))


def _check_structure(root: yaml.Node) -> None:
    """Refuse alias cycles, expansion past MAX_VALUES, nesting past MAX_DEPTH and bad keys.

    Aliases make the node graph a DAG whose expanded size can be exponential in its own;
    sizes are summed once per distinct node, so this costs the graph, not the expansion.
    Without aliases the size was already bounded by `_check_events`.
    """
    if not isinstance(root, yaml.CollectionNode):
        return
    done: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded values, height)
    stack = [_enter(root)]
    on_path = {id(root)}
    while stack:
        frame = stack[-1]
        child = next(frame.pending, None)
        if child is None:
            stack.pop()
            on_path.discard(id(frame.node))
            if frame.values > MAX_VALUES:
                raise YamlFileError(f"more than {MAX_VALUES:,} values once its aliases are "
                                    "expanded (aliases that repeat aliases multiply) — write the "
                                    "values out or use fewer aliases", _line(frame.node))
            done[id(frame.node)] = (frame.values, frame.height)
            if stack:
                stack[-1].values += frame.values - 1  # the child itself was counted as written
                stack[-1].height = max(stack[-1].height, frame.height + 1)
            continue
        if id(child) in on_path:
            raise YamlFileError("this value contains itself through an alias (*name inside the "
                                "value anchored &name) — an alias must not point at a value it "
                                "is part of", _line(child))
        if id(child) in done:
            values, height = done[id(child)]
            frame.values += values - 1
            frame.height = max(frame.height, height + 1)
            if len(stack) + height > MAX_DEPTH:
                raise YamlFileError(f"nested more than {MAX_DEPTH} levels deep once aliases are "
                                    "expanded — flatten it", _line(child))
            continue
        if len(stack) >= MAX_DEPTH:
            raise YamlFileError(f"nested more than {MAX_DEPTH} levels deep — flatten it",
                                _line(child))
        on_path.add(id(child))
        stack.append(_enter(child))


def _check_events(text: str) -> None:
    """Refuse too many values, or one too long, from the event stream before building nodes.

    Composing nodes costs ~5 µs each; this pass costs a fraction of that and stops early.
    """
    loader = _SafeLoader(text)
    try:
        count = 0
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, (yaml.ScalarEvent, yaml.CollectionStartEvent, yaml.AliasEvent)):
                count += 1
                if count > MAX_VALUES:
                    raise YamlFileError(f"more than {MAX_VALUES:,} values — inventory files are "
                                        "far smaller; check it is the file you meant",
                                        event.start_mark.line + 1)
            if isinstance(event, yaml.ScalarEvent) and len(event.value) > MAX_SCALAR_CHARS:
                raise YamlFileError(f"a value of {len(event.value):,} characters, more than the "
                                    f"{MAX_SCALAR_CHARS:,} allowed — shorten it",
                                    event.start_mark.line + 1)
    finally:
        loader.dispose()


def _index_lines(node: yaml.Node, path: PathKey, lines: dict[PathKey, int]) -> None:
    lines[path] = _line(node)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            _index_lines(value_node, path + (key,), lines)
            lines[path + (key,)] = _line(key_node)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, path + (index,), lines)


def _read_text(file: Path) -> tuple[str, bytes]:
    try:
        info = file.stat()
        if not stat.S_ISREG(info.st_mode):
            raise YamlFileError("not a regular file — replace it with a YAML file or remove it")
        if info.st_size > MAX_FILE_BYTES:
            raise YamlFileError(f"{info.st_size:,} bytes, more than the {MAX_FILE_BYTES:,} an "
                                "inventory file may have — check it is the file you meant")
        with file.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)  # the file may have grown since stat
    except OSError as exc:
        raise YamlFileError(f"cannot read file: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise YamlFileError(f"more than the {MAX_FILE_BYTES:,} bytes an inventory file may "
                            "have — check it is the file you meant")
    try:
        return raw.decode("utf-8"), raw
    except UnicodeDecodeError as exc:
        raise YamlFileError(f"not UTF-8 text (byte 0x{raw[exc.start]:02x}) — save the file as "
                            "UTF-8", _line_breaks(raw[:exc.start].decode("utf-8")) + 1) from None


# Problems libyaml finds only at the next token, past the line that holds the mistake.
_UNFINISHED_FLOW = ("did not find expected ',' or ']'", "did not find expected ',' or '}'")
_UNCLOSED_QUOTE = "while scanning a quoted scalar"


def _last_content_line(text: str, opened: yaml.Mark, gave_up: yaml.Mark) -> int:
    """1-based line where a missing ']' or '}' belongs: the last line with content before
    the one where the scanner gave up. A plain value folds onto the next line inside
    brackets, so the scanner notices only at the next key (`wave:`), a line or more later."""
    lines = text.splitlines()
    for index in range(min(gave_up.line, len(lines)) - 1, opened.line - 1, -1):
        content = lines[index].strip()
        if content and not content.startswith("#"):
            return index + 1
    return gave_up.line + 1


def _mistake_line(exc: yaml.MarkedYAMLError, text: str) -> int | None:
    """The line an editor should jump to: the mistake, not where the parser gave up."""
    if exc.problem_mark and exc.context_mark and (exc.problem or "").startswith(_UNFINISHED_FLOW):
        return _last_content_line(text, exc.context_mark, exc.problem_mark)
    if exc.context == _UNCLOSED_QUOTE and exc.context_mark:
        return exc.context_mark.line + 1  # the opening quote; the stream ended unclosed
    mark = exc.problem_mark or exc.context_mark
    return mark.line + 1 if mark else None


def _syntax_error(exc: yaml.MarkedYAMLError, text: str) -> YamlFileError:
    where = ""
    if exc.context and exc.context_mark and exc.problem_mark \
            and exc.context_mark.line != exc.problem_mark.line:
        where = f" ({exc.context}, line {exc.context_mark.line + 1})"
    problem = exc.problem or exc.context or "unreadable"
    if isinstance(exc, ConstructorError):  # unknown tag, impossible date, !!int on text …
        message = f"YAML value error: {problem}{where} — correct it, or quote it if it is text"
    elif problem.startswith(_UNFINISHED_FLOW):
        message = (f"YAML syntax error: {problem}{where} — a '[' or '{{' is not closed: close "
                   "it at the end of this line, or separate the items with ','")
    else:
        message = f"YAML syntax error: {problem}{where} — fix the YAML so it parses"
    return YamlFileError(message, _mistake_line(exc, text))


def _line_breaks(text: str) -> int:
    """Line breaks as YAML and editors count them (\n, \r\n, a lone \r …)."""
    return len(f"x{text}x".splitlines()) - 1


def _reader_error(exc: yaml.reader.ReaderError, text: str, raw: bytes) -> YamlFileError:
    before = raw[:exc.position].decode("utf-8", "replace") if _OFFSETS_IN_BYTES \
        else text[:exc.position]
    return YamlFileError(f"character U+{exc.character:04X} is not allowed in YAML "
                         f"({exc.reason}) — remove it, or write it as an escape such as \\x01 "
                         "in a double-quoted string", _line_breaks(before) + 1)


def _compose_and_construct(text: str) -> tuple[Any, yaml.Node | None]:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _check_structure(node)
        return loader.construct_document(node), node
    finally:
        loader.dispose()


def _parse(text: str, raw: bytes) -> tuple[Any, yaml.Node | None]:
    try:
        _check_events(text)
        return _compose_and_construct(text)
    except yaml.MarkedYAMLError as exc:
        error = _syntax_error(exc, text)
        if error.line is not None:  # libyaml puts "unexpected end of file" past the last line
            error.line = min(error.line, max(1, len(text.splitlines())))
        raise error from None
    except yaml.reader.ReaderError as exc:
        raise _reader_error(exc, text, raw) from None
    except yaml.YAMLError as exc:  # no other kind is known to reach here; keep the promise
        raise YamlFileError(f"YAML error: {exc} — fix the YAML so it parses") from None


def load_yaml(file: Path) -> YamlDocument:
    """Parse one YAML file, or raise YamlFileError naming the problem and, where known, the line."""
    text, raw = _read_text(file)
    data, node = _parse(text, raw)
    if node is None:
        return YamlDocument(file, None)
    lines: dict[PathKey, int] = {}
    _index_lines(node, (), lines)
    return YamlDocument(file, data, lines)
