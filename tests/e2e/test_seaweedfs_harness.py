"""The SeaweedFS harness starts a real server, serves S3 on 127.0.0.1 and stops cleanly."""

from __future__ import annotations

import hashlib
import socket
from typing import TYPE_CHECKING

import pytest

from tests.support.seaweedfs import HOST, SeaweedServer, create_bucket, make_client

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.e2e


def _port_accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((HOST, port)) == 0


def test_server_serves_s3_and_closes_its_port_on_stop(tmp_path: Path) -> None:
    """A started server stores and reports an object, and its S3 port is closed after stop."""
    body = b"woof" * 1024
    with SeaweedServer(tmp_path) as server:
        endpoint = server.start()
        assert endpoint.endpoint_url == f"http://{HOST}:{server.s3_port}"
        assert endpoint.region == "us-east-1"
        create_bucket(endpoint, "harness")
        client = make_client(endpoint)
        client.put_object(Bucket="harness", Key="a/b.m4a", Body=body, ContentType="audio/mp4")
        head = client.head_object(Bucket="harness", Key="a/b.m4a")
        assert head["ContentLength"] == len(body)
        assert head["ContentType"] == "audio/mp4"
        assert head["ETag"].strip('"') == hashlib.md5(body).hexdigest()  # noqa: S324
        assert _port_accepts(server.s3_port)  # other listeners may start lazily
        ports = dict(server.ports)
        server.stop()
        assert server.pid is None
        assert not any(_port_accepts(port) for port in ports.values())
    assert (tmp_path / "weed.log").is_file()


def test_server_stop_is_idempotent_and_safe_before_start(tmp_path: Path) -> None:
    """stop() before start() and twice in a row does nothing harmful."""
    server = SeaweedServer(tmp_path)
    server.stop()
    server.stop()
    assert server.pid is None
