"""A seekable reader over an object in storage, fetched lazily in ranged reads."""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from helppet_recordings.errors import UploadVerificationError
from helppet_recordings.storage_capabilities import PinnedReads

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

    from helppet_recordings.ports import RecordingStorage

__all__ = ["DEFAULT_BLOCK_SIZE", "RangeReader"]

DEFAULT_BLOCK_SIZE: Final = 1024 * 1024
"""Bytes fetched by one ranged read (1 MiB)."""

_DEFAULT_MAX_BLOCKS: Final = 4


class RangeReader(io.RawIOBase):
    """A read-only, seekable binary stream over ``size`` bytes fetched on demand.

    ``read_range(offset, length)`` returns up to ``length`` bytes starting at
    ``offset`` (fewer only at the end), or None when the object no longer
    exists: the storage port's ``read_range`` bound to one key (see
    :meth:`from_storage`). Bytes are fetched in aligned blocks of
    ``block_size`` and the ``max_blocks`` most recently used blocks are kept,
    so memory stays below ``block_size * max_blocks`` however large the
    object is, and a demuxer that reads an index at the end of a file and then
    the data from the start fetches each block about once.

    The object must stay what was verified: when storage no longer has it,
    or it ends before ``size``, reads raise ``UploadVerificationError`` with
    ``details["reason"]`` ``object_missing`` or ``object_changed``. Errors of
    the callable itself (``StorageUnavailableError``, or an
    ``UploadVerificationError`` of a read pinned to an ETag that found another
    object) pass through unchanged.
    """

    def __init__(
        self,
        read_range: Callable[[int, int], bytes | None],
        size: int,
        *,
        block_size: int = DEFAULT_BLOCK_SIZE,
        max_blocks: int = _DEFAULT_MAX_BLOCKS,
    ) -> None:
        super().__init__()
        if size < 0:
            msg = "size must not be negative"
            raise ValueError(msg)
        if block_size < 1 or max_blocks < 1:
            msg = "block_size and max_blocks must be at least 1"
            raise ValueError(msg)
        self._read_range = read_range
        self._size = size
        self._block_size = block_size
        self._max_blocks = max_blocks
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._position = 0
        self._failed = False
        self.fetches = 0
        """How many ranged reads this reader has made (for tests and benchmarks)."""

    @classmethod
    def from_storage(
        cls,
        storage: RecordingStorage,
        key: str,
        size: int,
        *,
        etag: str | None = None,
        block_size: int = DEFAULT_BLOCK_SIZE,
        max_blocks: int = _DEFAULT_MAX_BLOCKS,
    ) -> RangeReader:
        """Return a reader over the object at ``key`` of a storage backend.

        With ``etag`` (the ETag the object was verified with) every read is
        pinned to that object: through ``PinnedReads.read_pinned`` where the
        storage has it (the check and the read are one step), otherwise each
        block is checked with ``head`` after it is read. A read that finds
        another object there raises ``UploadVerificationError`` (reason
        ``object_changed``), whatever its size.
        """
        return cls(
            _storage_reads(storage, key, etag), size, block_size=block_size, max_blocks=max_blocks
        )

    @property
    def size(self) -> int:
        """The object's size in bytes."""
        return self._size

    def readable(self) -> bool:
        """Return True: the stream can be read."""
        return True

    def seekable(self) -> bool:
        """Return True: the stream can seek anywhere."""
        return True

    def tell(self) -> int:
        """Return the current position."""
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move to ``offset`` relative to the start, the current position or the end."""
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._position + offset
        elif whence == io.SEEK_END:
            position = self._size + offset
        else:
            msg = f"invalid whence ({whence})"
            raise ValueError(msg)
        if position < 0:
            msg = "negative seek position"
            raise OSError(msg)
        self._position = position
        return position

    def readinto(self, buffer: WriteableBuffer) -> int:
        """Read up to ``len(buffer)`` bytes into ``buffer``; 0 at the end."""
        view = memoryview(buffer).cast("B")
        if self._failed:
            # A demuxer may read again after an error; the error was raised once already.
            return 0
        filled = 0
        while filled < len(view) and self._position < self._size:
            index, start = divmod(self._position, self._block_size)
            block = self._block(index)
            piece = block[start : start + len(view) - filled]
            view[filled : filled + len(piece)] = piece
            filled += len(piece)
            self._position += len(piece)
        return filled

    def _block(self, index: int) -> bytes:
        block = self._blocks.get(index)
        if block is not None:
            self._blocks.move_to_end(index)
            return block
        offset = index * self._block_size
        length = min(self._block_size, self._size - offset)
        try:
            data = self._read_range(offset, length)
            self.fetches += 1
            if data is None:
                raise UploadVerificationError(
                    "The stored audio is no longer in storage", reason="object_missing"
                )
            if len(data) < length:
                raise UploadVerificationError(
                    "The stored audio is shorter than the verified upload",
                    reason="object_changed",
                )
        except BaseException:
            self._failed = True
            raise
        block = bytes(data[:length])
        self._blocks[index] = block
        if len(self._blocks) > self._max_blocks:
            self._blocks.popitem(last=False)
        return block


def _storage_reads(
    storage: RecordingStorage, key: str, etag: str | None
) -> Callable[[int, int], bytes | None]:
    """Return the ranged reads of ``key``, pinned to the object with ``etag`` when given."""
    if etag is None:

        def read(offset: int, length: int) -> bytes | None:
            return storage.read_range(key, offset=offset, length=length)

    elif isinstance(storage, PinnedReads):

        def read(offset: int, length: int) -> bytes | None:
            data = storage.read_pinned(key, etag=etag, offset=offset, length=length)
            if data is None and storage.head(key) is not None:
                raise _changed()  # there is an object, but not the one with this ETag
            return data

    else:

        def read(offset: int, length: int) -> bytes | None:
            data = storage.read_range(key, offset=offset, length=length)
            if data is None:
                return None
            stored = storage.head(key)
            if stored is None:
                return None
            if stored.etag != etag:
                raise _changed()
            return data

    return read


def _changed() -> UploadVerificationError:
    return UploadVerificationError(
        "The stored audio is no longer the verified upload", reason="object_changed"
    )
