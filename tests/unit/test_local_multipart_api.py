"""The python-multipart API the upload receiver relies on, and the floor declared for it.

``pyproject.toml`` declares ``python-multipart>=0.0.27`` in the ``local``
extra: 0.0.27 added ``MultipartParser(max_header_count=...)``, and with any
earlier release every upload failed with a TypeError. These tests fail on an
installed version that lacks what the receiver calls.
"""

from __future__ import annotations

import inspect
import re
import tomllib
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

ROOT = Path(__file__).resolve().parents[2]
CALLBACKS = (
    "on_part_begin",
    "on_header_field",
    "on_header_value",
    "on_header_end",
    "on_headers_finished",
    "on_part_data",
    "on_part_end",
)


def _release(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def _declared_floor() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    (requirement,) = project["optional-dependencies"]["local"]
    match = re.fullmatch(r"python-multipart>=([\d.]+)", requirement)
    assert match is not None, requirement
    return match.group(1)


def test_installed_release_meets_the_declared_floor() -> None:
    """The floor is 0.0.27, and what is installed is at least that."""
    floor = _declared_floor()
    assert _release(floor) >= (0, 0, 27)
    assert _release(version("python-multipart")) >= _release(floor)


def test_parser_takes_a_boundary_callbacks_and_a_header_count_limit() -> None:
    """MultipartParser accepts the arguments the receiver passes, by those names."""
    parameters = inspect.signature(MultipartParser).parameters
    assert {"boundary", "callbacks", "max_header_count"} <= set(parameters)
    assert parameters["max_header_count"].kind is not inspect.Parameter.POSITIONAL_ONLY


def test_callbacks_see_parts_headers_and_data_as_slices() -> None:
    """Each callback the receiver registers fires, data ones with (data, start, end)."""
    seen: list[tuple[str, bytes]] = []

    def event(name: str) -> Callable[..., None]:
        def plain() -> None:
            seen.append((name, b""))

        def sliced(data: bytes, start: int, end: int) -> None:
            seen.append((name, bytes(data[start:end])))

        return sliced if name in {"on_header_field", "on_header_value", "on_part_data"} else plain

    callbacks: Any = {name: event(name) for name in CALLBACKS}
    parser = MultipartParser(b"abc", callbacks=callbacks, max_header_count=2)
    body = b'--abc\r\nContent-Disposition: form-data; name="key"\r\n\r\nvalue\r\n--abc--\r\n'
    for index in range(len(body)):  # byte by byte: slices may split anywhere
        parser.write(body[index : index + 1])
    parser.finalize()
    names = [name for name, _ in seen]
    assert names[0] == "on_part_begin"
    assert names[-1] == "on_part_end"
    assert {"on_header_end", "on_headers_finished"} <= set(names)
    joined = {name: b"".join(data for n, data in seen if n == name) for name in names}
    assert joined["on_header_field"] == b"Content-Disposition"
    assert joined["on_header_value"] == b'form-data; name="key"'
    assert joined["on_part_data"] == b"value"


def test_too_many_headers_and_malformed_bodies_raise_form_parser_error() -> None:
    """Both failures the receiver turns into MalformedPOSTRequest are FormParserErrors."""
    parser = MultipartParser(b"abc", callbacks={}, max_header_count=1)
    with pytest.raises(FormParserError):
        parser.write(b"--abc\r\nA: 1\r\nB: 2\r\n\r\nx\r\n--abc--\r\n")
    with pytest.raises(FormParserError):
        MultipartParser(b"abc", callbacks={}).write(b"--abX\r\n\r\n")


def test_parse_options_header_gives_bytes() -> None:
    """The header parser returns the type and parameters as bytes, and copes with None."""
    assert parse_options_header("multipart/form-data; boundary=abc") == (
        b"multipart/form-data",
        {b"boundary": b"abc"},
    )
    assert parse_options_header(None) == (b"", {})
    kind, params = parse_options_header(b'form-data; name="file"; filename="a.m4a"')
    assert (kind, params[b"name"]) == (b"form-data", b"file")
