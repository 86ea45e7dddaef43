"""The storage contract fails a backend that lists keys out of order."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from helppet_recordings import InMemoryStorage
from helppet_recordings.models import StoredObject
from helppet_recordings.testing.storage_contract import PutObject, StorageContract


class ListsByDirectory(InMemoryStorage):
    """Lists as a sorted directory walk does: level by level, so ``a/1`` before ``a-1``."""

    def iter_objects(self, prefix: str) -> Iterator[StoredObject]:
        """Every object under ``prefix``, sorted by path segments."""
        return iter(sorted(super().iter_objects(prefix), key=lambda found: found.key.split("/")))


class ListsNewestFirst(InMemoryStorage):
    """Lists every object, but in descending key order."""

    def iter_objects(self, prefix: str) -> Iterator[StoredObject]:
        """Every object under ``prefix``, last key first."""
        return reversed(list(super().iter_objects(prefix)))


def _put(storage: InMemoryStorage) -> PutObject:
    def put(key: str, body: bytes, content_type: str) -> None:
        storage.put_object(key, body, content_type=content_type)

    return put


@pytest.mark.parametrize(
    ("backend", "test"),
    [
        (ListsByDirectory, "test_iter_objects_orders_keys_across_directory_boundaries"),
        (ListsNewestFirst, "test_iter_objects_lists_in_ascending_key_order"),
        (ListsNewestFirst, "test_iter_objects_lists_only_the_prefix"),
    ],
    ids=["by directory", "newest first", "newest first, prefix"],
)
def test_a_listing_out_of_key_order_fails_the_contract(
    backend: type[InMemoryStorage], test: str
) -> None:
    """The port requires ascending key order; the contract checks the order, not only the set."""
    storage = backend()
    contract_test: Callable[[InMemoryStorage, PutObject], None] = getattr(StorageContract(), test)
    with pytest.raises(AssertionError):
        contract_test(storage, _put(storage))
