"""The streaming multipart/form-data parser of one upload, on python-multipart.

It is fed the body chunk by chunk. The form fields must come before the
``file`` part; when the file part begins, the fields are checked against the
signed policy, and only then is anything kept of the file. Until then at
most ``MAX_PRE_DATA_BYTES`` of the body are parsed (boundaries, part headers
and fields alike): a client without a valid ticket is refused before it can
make the server hold more. Once the file part ends the upload is committed;
everything after it is ignored.

Parsing up to the file touches no disk (:meth:`FormUpload.parse_before_file`),
so an event loop can do it itself and refuse a client without a ticket at
once; the file's first bytes, which arrive with its header, are held until
:meth:`FormUpload.open_file` creates the temporary file (in a worker thread).
:meth:`FormUpload.feed` does all of it, for callers that may block.

One thread feeds an upload at a time, but :meth:`FormUpload.close` may come
from another (a worker thread, while another still writes a batch): a lock
makes it wait for the batch rather than pull the file from under it, and a
batch that comes after it is ignored rather than staging a new file.
"""

from __future__ import annotations

import enum
import threading
from typing import Final

from helppet_recordings.errors import MissingDependencyError
from helppet_recordings.models import StoredObject
from helppet_recordings.storage.local.limits import MAX_PRE_DATA_BYTES
from helppet_recordings.storage.local.refusal import (
    LocalStorageRefusal,
    condition_failed,
    entity_too_large,
    incomplete_body,
    malformed,
)
from helppet_recordings.storage.local.signing import UploadPolicy
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
    """One multipart/form-data upload, fed chunk by chunk by one thread at a time."""

    def __init__(self, storage: LocalStorage, content_type: str | None) -> None:
        self._storage = storage
        self._lock = threading.Lock()
        self._fields: dict[str, str] = {}
        self._pre_data = 0
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, str] = {}
        self._part = _Part.NONE
        self._field_name = ""
        self._field_value = bytearray()
        self._policy: UploadPolicy | None = None
        self._held = bytearray()  # the file's first bytes, until it is staged
        self._file_ended = False
        self._staged: StagedUpload | None = None
        self._closed = False
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

    @property
    def file_started(self) -> bool:
        """Whether the file part has begun under a verified ticket."""
        return self._policy is not None

    @property
    def holds_file(self) -> bool:
        """Whether a temporary file is open (read it only while no worker feeds the upload)."""
        return self._staged is not None

    @property
    def pre_data_room(self) -> int:
        """How many more bytes may come before the file's content (0: the next is refused)."""
        return max(0, MAX_PRE_DATA_BYTES - self._pre_data)

    def parse_before_file(self, piece: bytes) -> None:
        """Parse ``piece``, which must not run past the pre-data limit; touches no disk.

        Raises ``MaxPostPreDataLengthExceeded`` when there is no room left.
        Call it only until :attr:`file_started`; then :meth:`open_file`.
        """
        with self._lock:
            self._parse_before_file(piece)

    def open_file(self) -> None:
        """Create the temporary file of a started file part and write the bytes held for it.

        Commits at once if the file part has already ended. Raises
        ``AccessDenied`` if the signed key cannot be stored safely.
        """
        with self._lock:
            self._open_file()

    def feed(self, chunk: bytes) -> None:
        """Parse the next chunk of the body, writing the file as it comes."""
        with self._lock:
            if self.stored is not None or self._closed:
                return
            offset = 0
            while offset < len(chunk) and not self.file_started:
                piece = chunk[offset : offset + max(self.pre_data_room, 1)]
                offset += len(piece)
                self._parse_before_file(piece)
            self._open_file()
            if offset < len(chunk) and self.stored is None:
                self._write(chunk[offset:] if offset else chunk)

    def end(self) -> None:
        """Note the end of the body; raise unless the file was complete."""
        with self._lock:
            if self.stored is not None:
                return
            if self.file_started:
                raise incomplete_body()
            raise LocalStorageRefusal(
                400, "InvalidArgument", "POST requires exactly one file upload per request."
            )

    def close(self) -> None:
        """Discard a file that was not stored (waiting for a feed in another thread).

        Nothing is written after this: a later feed or open is ignored.
        """
        with self._lock:
            self._closed = True
            staged, self._staged = self._staged, None
            self._held.clear()
        if staged is not None:
            staged.discard()

    def _parse_before_file(self, piece: bytes) -> None:
        if self.pre_data_room < len(piece) or not piece:
            raise LocalStorageRefusal(
                400,
                "MaxPostPreDataLengthExceeded",
                "Your POST request fields preceding the upload file were too large.",
            )
        self._pre_data += len(piece)
        self._write(piece)

    def _open_file(self) -> None:
        policy = self._policy
        if policy is None or self._closed or self._staged is not None or self.stored is not None:
            return
        try:
            self._staged = self._storage.stage(policy)
        except ValueError:
            raise condition_failed("key", policy.key) from None
        self._staged.write(bytes(self._held))
        self._held = bytearray()
        if self._file_ended:
            self._commit()

    def _write(self, data: bytes) -> None:
        try:
            self._parser.write(data)
        except FormParserError as exc:
            raise malformed() from exc

    def _commit(self) -> None:
        staged, self._staged = self._staged, None
        assert staged is not None  # noqa: S101 - committed only once staged
        try:
            self.stored = staged.commit()
        finally:
            staged.discard()

    # Parser callbacks. Everything after the file part is ignored.

    def _on_part_begin(self) -> None:
        self._headers = {}
        self._header_name.clear()
        self._header_value.clear()
        self._part = _Part.IGNORED if self._file_ended else _Part.NONE

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        if not self._file_ended:
            self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        if not self._file_ended:
            self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        if self._file_ended:
            return
        name = self._header_name.decode("latin-1").strip().lower()
        value = self._header_value.decode("latin-1").strip()
        self._header_name.clear()
        self._header_value.clear()
        if name in self._headers:
            raise malformed()
        self._headers[name] = value

    def _on_headers_finished(self) -> None:
        if self._file_ended:
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
            self._policy = self._storage.verify_upload(self._fields, check_path=False)
            self._part = _Part.FILE
            return
        if name in self._fields:
            raise LocalStorageRefusal(
                400,
                "InvalidArgument",
                f"The POST form field {name!r} appears more than once.",
                ArgumentName=name,
            )
        self._field_name = name
        self._field_value.clear()
        self._part = _Part.FIELD

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part is _Part.FILE:
            if self._staged is not None:
                self._staged.write(memoryview(data)[start:end])
                return
            assert self._policy is not None  # noqa: S101 - set with the part kind
            if len(self._held) + end - start > self._policy.max_size:
                raise entity_too_large(self._policy.max_size)
            self._held += data[start:end]
        elif self._part is _Part.FIELD:
            self._field_value += data[start:end]

    def _on_part_end(self) -> None:
        if self._part is _Part.FIELD:
            try:
                self._fields[self._field_name] = self._field_value.decode("utf-8")
            except UnicodeDecodeError:
                raise malformed() from None
            self._field_value.clear()
        elif self._part is _Part.FILE:
            self._file_ended = True
            if self._staged is not None:
                self._commit()
        self._part = _Part.IGNORED if self._file_ended else _Part.NONE


def _boundary(content_type: str | None) -> bytes:
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary", b"")
    if kind != b"multipart/form-data" or not 1 <= len(boundary) <= _MAX_BOUNDARY_LENGTH:
        raise malformed()
    return boundary
