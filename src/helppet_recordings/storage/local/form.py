"""The streaming multipart/form-data parser of one upload, on python-multipart.

It is fed the body chunk by chunk. The form fields must come before the
``file`` part; when the file part begins, the fields are checked against the
signed policy and only then is a byte written, to a staged upload. Once the
file part ends the upload is committed; everything after it is ignored.
"""

from __future__ import annotations

import enum
from typing import Final

from helppet_recordings.errors import MissingDependencyError
from helppet_recordings.models import StoredObject
from helppet_recordings.storage.local.limits import MAX_PRE_DATA_BYTES
from helppet_recordings.storage.local.refusal import (
    LocalStorageRefusal,
    incomplete_body,
    malformed,
)
from helppet_recordings.storage.local.staging import StagedUpload
from helppet_recordings.storage.local.storage import LocalStorage

try:
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import MultipartParser, parse_options_header
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("python-multipart", "local") from exc

__all__ = ["FormUpload"]

_MAX_PART_HEADERS: Final = 8
_MAX_BOUNDARY_LENGTH: Final = 70  # RFC 2046
_FILE_FIELD: Final = "file"


class _Part(enum.Enum):
    NONE = enum.auto()
    FIELD = enum.auto()
    FILE = enum.auto()
    IGNORED = enum.auto()


class FormUpload:
    """One multipart/form-data upload, fed chunk by chunk; not thread-safe (one feeder)."""

    def __init__(self, storage: LocalStorage, content_type: str | None) -> None:
        self._storage = storage
        self._fields: dict[str, str] = {}
        self._pre_data = 0
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, str] = {}
        self._part = _Part.NONE
        self._field_name = ""
        self._field_value = bytearray()
        self._staged: StagedUpload | None = None
        self.stored: StoredObject | None = None
        try:
            self._parser = MultipartParser(
                _boundary(content_type),
                callbacks={
                    "on_part_begin": self._on_part_begin,
                    "on_header_field": self._on_header_field,
                    "on_header_value": self._on_header_value,
                    "on_header_end": self._on_header_end,
                    "on_headers_finished": self._on_headers_finished,
                    "on_part_data": self._on_part_data,
                    "on_part_end": self._on_part_end,
                },
                max_header_count=_MAX_PART_HEADERS,
            )
        except FormParserError as exc:
            raise malformed() from exc

    @property
    def complete(self) -> bool:
        """Whether the file has been stored (the rest of the body is irrelevant)."""
        return self.stored is not None

    def feed(self, chunk: bytes) -> None:
        """Parse the next chunk of the body."""
        if self.stored is not None:
            return
        try:
            self._parser.write(chunk)
        except FormParserError as exc:
            raise malformed() from exc

    def end(self) -> None:
        """Note the end of the body; raise unless the file was complete."""
        if self.stored is not None:
            return
        if self._part is _Part.FILE or self._staged is not None:
            raise incomplete_body()
        raise LocalStorageRefusal(
            400, "InvalidArgument", "POST requires exactly one file upload per request."
        )

    def close(self) -> None:
        """Discard a file that was not stored."""
        staged, self._staged = self._staged, None
        if staged is not None:
            staged.discard()

    # Parser callbacks. Everything after the stored file is ignored.

    def _count(self, size: int) -> None:
        self._pre_data += size
        if self._pre_data > MAX_PRE_DATA_BYTES:
            raise LocalStorageRefusal(
                400,
                "MaxPostPreDataLengthExceeded",
                "Your POST request fields preceding the upload file were too large.",
            )

    def _on_part_begin(self) -> None:
        self._headers = {}
        self._header_name.clear()
        self._header_value.clear()
        self._part = _Part.NONE

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        if self.stored is None:
            self._count(end - start)
            self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        if self.stored is None:
            self._count(end - start)
            self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        if self.stored is not None:
            return
        name = self._header_name.decode("latin-1").strip().lower()
        value = self._header_value.decode("latin-1").strip()
        self._header_name.clear()
        self._header_value.clear()
        if name in self._headers:
            raise malformed()
        self._headers[name] = value

    def _on_headers_finished(self) -> None:
        if self.stored is not None:
            self._part = _Part.IGNORED
            return
        kind, params = parse_options_header(self._headers.get("content-disposition"))
        raw_name = params.get(b"name")
        if kind != b"form-data" or raw_name is None:
            raise malformed()
        try:
            name = raw_name.decode("utf-8").lower()
        except UnicodeDecodeError:
            raise malformed() from None
        if name == _FILE_FIELD:
            policy = self._storage.verify_upload(self._fields)
            self._staged = self._storage.stage(policy)
            self._part = _Part.FILE
            return
        if name in self._fields:
            raise LocalStorageRefusal(
                400,
                "InvalidArgument",
                f"The POST form field {name!r} appears more than once.",
                ArgumentName=name,
            )
        self._count(len(raw_name))
        self._field_name = name
        self._field_value.clear()
        self._part = _Part.FIELD

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part is _Part.FILE:
            assert self._staged is not None  # noqa: S101 - set together with the part kind
            self._staged.write(memoryview(data)[start:end])
        elif self._part is _Part.FIELD:
            self._count(end - start)
            self._field_value += data[start:end]

    def _on_part_end(self) -> None:
        if self._part is _Part.FIELD:
            try:
                self._fields[self._field_name] = self._field_value.decode("utf-8")
            except UnicodeDecodeError:
                raise malformed() from None
            self._field_value.clear()
        elif self._part is _Part.FILE:
            staged, self._staged = self._staged, None
            assert staged is not None  # noqa: S101 - set together with the part kind
            try:
                self.stored = staged.commit()
            finally:
                staged.discard()
        self._part = _Part.IGNORED if self.stored is not None else _Part.NONE


def _boundary(content_type: str | None) -> bytes:
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary", b"")
    if kind != b"multipart/form-data" or not 1 <= len(boundary) <= _MAX_BOUNDARY_LENGTH:
        raise malformed()
    return boundary
