"""Reading an inventory file never crashes or stalls: every hostile file becomes a
YamlFileError with the line an editor shows, in bounded time (no test waits on a clock:
the bounds are what make the hostile cases below finish at all)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inventory.yamlsource import (MAX_DEPTH, MAX_FILE_BYTES, MAX_SCALAR_CHARS, MAX_VALUES,
                                  YamlDocument, YamlFileError, load_yaml)
from tests.conftest import alias_bomb


def _nested_block(depth: int) -> str:
    return "".join("  " * i + f"k{i}:\n" for i in range(depth)) + "  " * depth + "leaf\n"


# name: (file content, line the error must point at, words the message must hold)
HOSTILE: dict[str, tuple[str | bytes, int | None, str]] = {
    "alias bomb": (alias_bomb(), 5, f"more than {MAX_VALUES:,} values once its aliases"),
    "many aliases of a small list": ("a: &a [1]\nb: [" + "*a, " * MAX_VALUES + "]\n", 2,
                                     f"more than {MAX_VALUES:,} values"),
    "anchor inside itself (flow)": ("name: &x [a, *x]\n", 1, "contains itself through an alias"),
    "anchor inside itself (block)": ("top: 1\nb: &x\n  c: *x\n", 2, "contains itself"),
    "list as a key": ("a: 1\n? [x, y]\n: 1\n", 2, "a mapping key is a list"),
    "mapping as a key": ("x:\n  ? {a: 1}\n  : 2\n", 2, "a mapping key is a mapping"),
    "key written twice": ("a: 1\nb: 2\na: 3\n", 3, "key 'a' appears twice"),
    "control character": ("a: 1\nb: \x01\n", 2, "U+0001 is not allowed"),
    "control character after CJK text": ("名称: 中文中文\nb: \x07\n", 2, "U+0007"),
    "NUL byte": ("a: 1\n\nb: \x00\n", 3, "U+0000"),
    "not UTF-8": (b"a: 1\nb: caf\xe9\n", 2, "not UTF-8"),
    "UTF-16": ("a: 1\n".encode("utf-16"), 1, "not UTF-8"),
    "too many values": ("[" + "1, " * (MAX_VALUES + 1) + "]\n", 1, f"more than {MAX_VALUES:,}"),
    "value too long (sexagesimal int)": ("a: 1\nb: " + "1:" * MAX_SCALAR_CHARS + "1\n", 2,
                                         f"more than the {MAX_SCALAR_CHARS:,} allowed"),
    "nested too deep (block)": (_nested_block(MAX_DEPTH + 5), MAX_DEPTH + 1, "levels deep"),
    "nested past libyaml's limit (flow)": ("[" * 2000 + "]" * 2000, 1, "nesting depth"),
    "nested too deep through aliases": (
        "a: &a " + "[" * 40 + "]" * 40 + "\nb: " + "[" * 30 + "*a" + "]" * 30 + "\n", 1,
        "levels deep once aliases are expanded"),
    "impossible date": ("a: 1\nwhen: 2024-13-01\n", 2, "month must be in 1..12"),
    "integer too long to convert": ("a: " + "9" * 5000 + "\n", 1, "YAML value error"),
    "!!int on text": ("a: 1\nb: !!int abc\n", 2, "YAML value error"),
    "python tag": ("a: !!python/object/apply:os.system [id]\n", 1, "could not determine"),
    "merge of a list of scalars": ("a: &a [1]\nb:\n  <<: *a\n", 1, "merging"),
    "undefined alias": ("a: 1\nb: *nope\n", 2, "undefined alias"),
    # The mistake's line, not the next key's, where libyaml gives up (issue 14: one line off)
    "unclosed flow sequence": ("a: 1\nb: [x, y\nc: 2\n", 2, "'[' or '{' is not closed"),
    "unclosed flow mapping": ("a: 1\nb: {x: 1\nc: 2\n", 2, "'[' or '{' is not closed"),
    "unclosed multi-line flow sequence": ("ports: [\n  80,\n  443\n\n# c\nwave: 1\n", 3,
                                          "(while parsing a flow sequence, line 1)"),
    "unclosed quote": ("name: 'x\nwave: 1\ntier: t\n", 1, "quoted scalar"),
    "bad indent": ("name: x\napp:\n  flavor: a\n image: b\nwave: 1\n", 4, "expected key"),
    "deeper indent": ("name: x\napp:\n  flavor: a\n    image: b\nwave: 1\n", 4,
                      "mapping values are not allowed"),
    "tab inside a mapping": ("name: x\napp:\n  flavor:\ta\n\timage: b\n", 4, "tab character"),
    "unclosed at the end of the file": ("a: 1\nb: [x, y\n", 2, "YAML syntax error"),
    "lone CR line breaks": ("a: 1\rb: 2\rc: \x01\r", 3, "U+0001"),
    "unclosed flow sequence, CRLF": ("a: 1\r\nb: [x, y\r\nc: 2\r\n", 2, "line 2"),
    "tab indentation": ("a:\n\tb: 1\n", 2, "YAML syntax error"),
    "two documents": ("a: 1\n---\nb: 2\n", 2, "single document"),
}


def _write(tmp_path: Path, content: str | bytes) -> Path:
    file = tmp_path / "hostile.yaml"
    if isinstance(content, bytes):
        file.write_bytes(content)
    else:
        file.write_text(content, encoding="utf-8", newline="")
    return file


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_file_is_a_file_error_at_its_line(tmp_path: Path, case: str):
    content, line, words = HOSTILE[case]
    with pytest.raises(YamlFileError) as caught:
        load_yaml(_write(tmp_path, content))
    assert words in str(caught.value)
    assert caught.value.line == line
    assert " — " in str(caught.value), "every message says how to fix it"


def test_oversized_file_is_refused_before_parsing(tmp_path: Path):
    file = tmp_path / "big.yaml"
    file.write_text("# padding\n" * (MAX_FILE_BYTES // 10 + 1) + "a: [unclosed\n")
    with pytest.raises(YamlFileError, match="more than the 1,048,576 an inventory file may have"):
        load_yaml(file)


def test_fifo_is_refused_without_blocking(tmp_path: Path):
    fifo = tmp_path / "tiers.yaml"
    os.mkfifo(fifo)
    with pytest.raises(YamlFileError, match="not a regular file"):
        load_yaml(fifo)


def test_anchors_and_merge_keys_within_bounds_still_load(tmp_path: Path):
    file = _write(tmp_path, "q: &q {main: {vcpus: 8}}\na: *q\nb:\n  <<: *q\n  extra: 1\n")
    doc = load_yaml(file)
    assert doc.data["a"] == {"main": {"vcpus": 8}}
    assert doc.data["b"] == {"main": {"vcpus": 8}, "extra": 1}
    assert doc.line_of(("b", "extra")) == 5


FRAGMENTS = ["a", "b", ": ", "- ", "\n", "\r\n", "  ", "\t", "[", "]", "{", "}", ", ", "? ",
             "&x ", "*x", "&y ", "*y", "<<: ", "!!int ", "!!map ", "!!python/name:os.system ",
             "!t ", "'", '"', "|\n", ">\n", "# c\n", "---\n", "...\n", "2024-13-01", "1:1:1",
             "0x", "~", "中文", "\x00", "\x01", "\ufeff", "\\", "%YAML 1.1\n"]
hostile_text = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join)


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=hostile_text, stray_bytes=st.binary(max_size=3))
def test_any_file_loads_or_is_a_file_error_with_a_plausible_line(tmp_path: Path, text: str,
                                                                  stray_bytes: bytes):
    content = text.encode("utf-8") + stray_bytes
    try:
        result = load_yaml(_write(tmp_path, content))
    except YamlFileError as error:
        lines = len(content.decode("utf-8", "replace").splitlines())
        assert error.line is None or 1 <= error.line <= max(1, lines)
        return
    assert isinstance(result, YamlDocument)
