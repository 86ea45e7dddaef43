"""LocalStorage keys: unsafe keys reach no path, and no path leaves the root."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helppet_recordings.storage.local import (
    LocalUploadReceiver,
    check_key,
)
from tests.support.local_forms import (
    encode_form,
    error_code,
    files_under,
    get_download,
    make_storage,
    make_ticket,
    receive,
)

# ------------------------------------------------------------------------ key safety


UNSAFE_KEYS = [
    "",
    "/etc/passwd",
    "../escape.m4a",
    "recordings/../../escape.m4a",
    "recordings/./a.m4a",
    "recordings//a.m4a",
    "recordings/a.m4a/",
    "recordings\\..\\a.m4a",
    "recordings/a\x00.m4a",
    "recordings/a\n.m4a",
    "recordings/.hidden",
    "recordings/a\u202egpj.m4a",
    "a" * 1025,
    "a/" + "b" * 256,
]


@pytest.mark.parametrize("key", UNSAFE_KEYS)
def test_unsafe_keys_are_refused_everywhere(tmp_path: Path, key: str) -> None:
    """Absolute, dot, empty-segment, backslash and control-character keys reach no path."""
    storage = make_storage(tmp_path)
    with pytest.raises(ValueError, match="key"):
        check_key(key)
    with pytest.raises(ValueError, match="key"):
        storage.create_upload(key=key, content_type="audio/mp4", max_size=9, expires_in=9)
    with pytest.raises(ValueError, match="key"):
        storage.create_download_url(key=key, expires_in=9, content_type="audio/mp4", filename="a")
    assert storage.head(key) is None
    storage.delete(key)
    assert storage.open_object(key) is None
    assert list(storage.iter_objects(key)) == []


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(["..", ".", "", "a", "b.m4a", "/", "\\", "~", "%2e", "\x00", "é", " "]),
        min_size=1,
        max_size=8,
    )
)
def test_any_key_that_passes_stays_inside_the_root(pieces: list[str]) -> None:
    """Whatever a key is made of, if it is accepted its path lies inside the root."""
    key = "/".join(pieces)
    root = Path("/srv/store").resolve()
    try:
        segments = check_key(key)
    except ValueError:
        return
    path = (root / "objects").joinpath(*segments)
    assert os.path.normpath(path).startswith(str(root / "objects") + os.sep)
    assert ".." not in segments


def test_symlink_out_of_the_root_is_not_followed(tmp_path: Path) -> None:
    """A symbolic link planted under the root cannot be used to write or read outside it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "a.m4a").write_bytes(b"outside")
    storage = make_storage(tmp_path / "store")
    (storage.root / "objects" / "recordings").symlink_to(outside, target_is_directory=True)
    key = "recordings/a.m4a"
    assert storage.head(key) is None
    assert storage.open_object(key) is None
    content_type, body = encode_form(make_ticket(storage, key=key).fields.items(), b"new bytes")
    response = receive(storage, content_type, [body])
    assert response.status == 403
    assert (outside / "a.m4a").read_bytes() == b"outside"


def test_a_symlink_loop_in_a_keys_directory_is_an_unusable_path(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A loop is refused as a link out of the root is, naming no path in an error or a log."""
    storage = make_storage(tmp_path / "store")
    user = "5f0c6c1e-0a7e-4b8e-9d5e-0c2b7b7f1a01"
    (storage.root / "objects" / "recordings").mkdir()
    loop = storage.root / "objects" / "recordings" / user
    loop.symlink_to(loop)
    key = f"recordings/{user}/ctx/a.m4a"
    content_type, body = encode_form(make_ticket(storage, key=key).fields.items(), b"new bytes")

    async def chunks() -> AsyncIterator[bytes]:
        yield body

    with caplog.at_level(logging.DEBUG):
        answers = [
            receive(storage, content_type, [body]),
            asyncio.run(LocalUploadReceiver(storage).receive_async(content_type, chunks())),
        ]
        download = get_download(
            storage,
            storage.create_download_url(
                key=key, expires_in=60, content_type="audio/mp4", filename="a.m4a"
            ),
        )
        assert storage.head(key) is None
        assert storage.open_object(key) is None
        assert list(storage.iter_objects(f"recordings/{user}/")) == []
        storage.delete(key)
        with pytest.raises(ValueError, match="storage root") as caught:
            storage.create_multipart_upload(key=key, content_type="audio/mp4")
    for answer in answers:
        assert (answer.status, error_code(answer)) == (403, "AccessDenied")
        assert str(tmp_path) not in answer.body.decode()
    assert (download.status, error_code(download)) == (404, "NoSuchKey")
    assert str(tmp_path) not in str(caught.value)
    assert not [r for r in caplog.records if str(tmp_path) in r.getMessage() or r.exc_info]
    assert files_under(storage.root) == []
