"""Test kit for hosts and backend authors (the ``testing`` extra: pytest, httpx).

- :mod:`~helppet_recordings.testing.storage_contract`: ``StorageContract`` and
  ``HttpStorageContract``, the suites every storage backend passes,
  ``PromoteContract`` for backends that move staged uploads, and
  ``PinnedReadsContract`` for backends with ``PinnedReads`` (reads pinned to
  an ETag); the last two live in ``promote_contract`` and
  ``pinned_reads_contract`` and import from here as before;
- :mod:`~helppet_recordings.testing.checksum_contract`: ``ChecksumPinningContract``,
  the suite every storage whose tickets pin the body's SHA-256 passes;
- :mod:`~helppet_recordings.testing.multipart_contract`: ``MultipartContract``,
  the suite every multipart (resumable upload) storage backend passes;
- :mod:`~helppet_recordings.testing.repository_contract`: ``RepositoryContract``,
  the suite every repository backend passes;
- :mod:`~helppet_recordings.testing.factories`: ``make_recording`` and ``BASE_TIME``;
- :mod:`~helppet_recordings.testing.clock`: ``FakeClock``, a clock tests can move.

A backend's test module subclasses a contract class and supplies its fixtures;
the package's own backends run the same suites from here::

    from helppet_recordings.testing.repository_contract import RepositoryContract

    class TestMyRepository(RepositoryContract):
        @pytest.fixture
        def repository(self):
            return MyRepository()

Importing this package imports neither pytest nor httpx; the contract modules do.
"""
