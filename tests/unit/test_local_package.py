"""The import surface of helppet_recordings.storage.local."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap

from helppet_recordings.storage import local

# Every public name the former ``storage.local`` and ``storage.local_receiver`` modules had.
FORMER_PUBLIC_NAMES = {
    "DEFAULT_BASE_URL",
    "DEFAULT_BATCH_SIZE",
    "DOWNLOAD_CHUNK_SIZE",
    "DownloadGrant",
    "FileChunks",
    "LocalResponse",
    "LocalStorage",
    "LocalStorageRefusal",
    "LocalUploadReceiver",
    "MAX_KEY_BYTES",
    "MAX_PRE_DATA_BYTES",
    "MAX_SEGMENT_BYTES",
    "MIN_SECRET_LENGTH",
    "PARALLEL_DIGEST_BYTES",
    "STALE_STAGING_SECONDS",
    "StagedUpload",
    "UploadPolicy",
    "check_key",
    "serve_download",
}


def test_every_former_public_name_is_exported() -> None:
    """Each name the two former modules offered is in __all__ and imports from the package."""
    assert set(local.__all__) >= FORMER_PUBLIC_NAMES
    assert len(local.__all__) == len(set(local.__all__))
    for name in local.__all__:
        assert getattr(local, name) is not None, name
    assert set(dir(local)) >= set(local.__all__)


def test_the_receiver_module_is_gone() -> None:
    """There is one place to import from: the old receiver module no longer exists."""
    assert importlib.util.find_spec("helppet_recordings.storage.local_receiver") is None


def test_only_the_receiver_needs_python_multipart() -> None:
    """Without python-multipart the storage and downloads work; the receiver says which extra."""
    script = textwrap.dedent(
        """
        import sys
        sys.modules["python_multipart"] = None  # as if the extra were not installed
        import helppet_recordings
        from helppet_recordings.errors import MissingDependencyError
        from helppet_recordings.storage.local import LocalStorage, serve_download
        try:
            from helppet_recordings.storage.local import LocalUploadReceiver
        except MissingDependencyError as error:
            print(error.details["extra"], LocalStorage.__name__, serve_download.__name__)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["local", "LocalStorage", "serve_download"]
