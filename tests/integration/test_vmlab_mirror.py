"""The artifact mirror (tests/vmlab/mirror.py) as a real daemon on the controller."""
from __future__ import annotations

import hashlib
import importlib
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

VMLAB_DIR = Path(__file__).resolve().parents[1] / "vmlab"
sys.path.insert(0, str(VMLAB_DIR))
mirror = importlib.import_module("mirror")

VERSION = "v1.33.5+k3s1"


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[Path, Path, dict[str, object]]]:
    root = tmp_path / "root"
    asset = tmp_path / "k3s"
    asset.write_bytes(b"#!/bin/sh\necho stand-in\n")
    mirror.add(root, VERSION, [asset])
    pidfile = tmp_path / "run" / "mirror.pid"
    info = mirror.start(root, pidfile)
    try:
        yield root, pidfile, info
    finally:
        mirror.stop(pidfile)


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (local test server)
        return bytes(response.read())


def test_upstream_style_encoded_url(served: tuple[Path, Path, dict[str, object]]) -> None:
    info = served[2]
    body = fetch(f"{info['url']}/v1.33.5%2Bk3s1/k3s")
    assert body == b"#!/bin/sh\necho stand-in\n"
    assert fetch(f"{info['url']}/v1.33.5+k3s1/k3s") == body
    assert str(info["vm_url"]).startswith("http://10.0.2.2:")
    assert str(info["vm_url"]).endswith(f":{info['port']}")


def test_checksum_file_matches(served: tuple[Path, Path, dict[str, object]]) -> None:
    root, info = served[0], served[2]
    sums = fetch(f"{info['url']}/v1.33.5%2Bk3s1/sha256sum-amd64.txt").decode()
    digest = hashlib.sha256((root / VERSION / "k3s").read_bytes()).hexdigest()
    assert sums == f"{digest}  k3s\n"
    check = subprocess.run(["sha256sum", "-c", "sha256sum-amd64.txt"], cwd=root / VERSION,
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def test_literal_encoded_directory_also_served(served: tuple[Path, Path, dict[str, object]]) -> None:
    root, info = served[0], served[2]
    literal = root / "v1.34.1%2Bk3s1"
    literal.mkdir()
    (literal / "k3s").write_bytes(b"literal")
    assert fetch(f"{info['url']}/v1.34.1%2Bk3s1/k3s") == b"literal"


def test_missing_asset_and_traversal_are_404(
        served: tuple[Path, Path, dict[str, object]], tmp_path: Path) -> None:
    info = served[2]
    (tmp_path / "secret").write_text("no")
    for path in ("/v1.33.5%2Bk3s1/k3s-arm64", "/../secret", "/%2E%2E/secret"):
        with pytest.raises(urllib.error.HTTPError) as err:
            fetch(f"{info['url']}{path}")
        assert err.value.code == 404


def test_start_reuses_and_stop_is_idempotent(served: tuple[Path, Path, dict[str, object]]) -> None:
    root, pidfile, info = served
    assert mirror.start(root, pidfile)["pid"] == info["pid"]
    assert mirror.stop(pidfile) is True
    assert mirror.running_pid(pidfile) is None
    assert mirror.stop(pidfile) is False
    with pytest.raises(urllib.error.URLError):
        fetch(f"{info['url']}/v1.33.5%2Bk3s1/k3s")


def test_add_updates_existing_checksums(tmp_path: Path) -> None:
    root = tmp_path / "root"
    one, two = tmp_path / "k3s", tmp_path / "k3s-airgap-images-amd64.tar.zst"
    one.write_bytes(b"1")
    two.write_bytes(b"2")
    mirror.add(root, VERSION, [one])
    one.write_bytes(b"1b")
    mirror.add(root, VERSION, [one, two])
    lines = (root / VERSION / "sha256sum-amd64.txt").read_text().splitlines()
    assert lines == [f"{hashlib.sha256(b'1b').hexdigest()}  k3s",
                     f"{hashlib.sha256(b'2').hexdigest()}  k3s-airgap-images-amd64.tar.zst"]
