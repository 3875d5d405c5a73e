"""plugins/filter/host_state.py: one read of a role's files and services, and what still differs.

The script runs for real here (sh, stat, sha1sum, sha256sum) against files in a temporary directory;
what it finds is compared by the rules of copy/template, get_url and file (plugin_utils/host_files.py).
"""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.dictamesh.k3s_gitops.plugins.filter.host_state import host_state_drift, host_state_script

OWNER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name
CONTENT = "token-file-content\n"
BINARY = b"\x7fELF pretend binary\x00"


def run(wanted: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(["sh", "-c", host_state_script(wanted)], capture_output=True, text=True, check=False)
    return {"rc": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}


def attrs(mode: str) -> dict[str, str]:
    return {"mode": mode, "owner": OWNER, "group": GROUP}


@pytest.fixture
def host(tmp_path: Path) -> dict[str, Any]:
    """Files as the role left them, and the matching wanted spec."""
    (tmp_path / "etc").mkdir(mode=0o755)
    (tmp_path / "etc").chmod(0o755)
    token = tmp_path / "etc/token"
    token.write_text(CONTENT, encoding="utf-8")
    token.chmod(0o600)
    binary = tmp_path / "k3s"
    binary.write_bytes(BINARY)
    binary.chmod(0o755)
    return {"files": {
        str(tmp_path / "etc"): dict(attrs("0755"), state="directory"),
        str(token): dict(attrs("0600"), content=CONTENT),
        str(binary): dict(attrs("0755"), sha256=hashlib.sha256(BINARY).hexdigest()),
        str(tmp_path / "etc/registries.yaml"): {"state": "absent"},
    }}


def test_files_as_wanted_need_nothing(host: dict[str, Any], tmp_path: Path) -> None:
    drift = host_state_drift(run(host), host)
    assert (drift["files"], drift["services"]) == ([], [])
    assert drift["mtime"] == {path: "none" if spec.get("state") == "absent" else str(int(os.stat(path).st_mtime))
                              for path, spec in host["files"].items()}


def test_each_rule_finds_its_difference(host: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "etc/token").write_text("another\n", encoding="utf-8")           # content
    (tmp_path / "k3s").chmod(0o700)                                             # mode, sha256 kept
    (tmp_path / "etc").chmod(0o700)                                             # directory mode
    (tmp_path / "etc/registries.yaml").write_text("mirrors: {}\n", encoding="utf-8")  # should be absent
    assert host_state_drift(run(host), host)["files"] == sorted(host["files"])


def test_a_binary_with_another_checksum_differs(host: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "k3s").write_bytes(BINARY + b"tampered")
    assert host_state_drift(run(host), host)["files"] == [str(tmp_path / "k3s")]


def test_missing_files_and_wrong_kinds_differ(host: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "etc/token").unlink()
    (tmp_path / "k3s").unlink()
    (tmp_path / "k3s").mkdir()                  # a directory where a file is wanted
    (tmp_path / "etc").rename(tmp_path / "moved")
    (tmp_path / "etc").symlink_to(tmp_path / "moved")  # a link where a directory is wanted
    assert host_state_drift(run(host), host)["files"] == sorted(
        [str(tmp_path / "etc"), str(tmp_path / "etc/token"), str(tmp_path / "k3s")])


def test_owner_and_group_are_compared(host: dict[str, Any], tmp_path: Path) -> None:
    path = str(tmp_path / "etc/token")
    other = dict(host, files=dict(host["files"], **{path: dict(host["files"][path], owner="nobody-else")}))
    assert host_state_drift(run(other), other)["files"] == [path]


def test_the_script_prints_digests_not_contents(host: dict[str, Any]) -> None:
    read = run(host)
    assert CONTENT.strip() not in read["stdout"]
    assert hashlib.sha1(CONTENT.encode()).hexdigest() in read["stdout"]
    assert CONTENT not in host_state_script(host)


def test_paths_are_quoted(tmp_path: Path) -> None:
    odd = tmp_path / "a dir; touch pwned"
    odd.mkdir()
    odd.chmod(0o755)
    wanted = {"files": {str(odd): dict(attrs("0755"), state="directory")}}
    assert host_state_drift(run(wanted), wanted)["files"] == []
    assert not Path("pwned").exists() and not (tmp_path / "pwned").exists()


def test_services_enabled_and_active_need_nothing() -> None:
    wanted = {"services": ["k3s", "k3s-agent", "iscsid"]}
    read = {"rc": 0, "stdout": "s0 enabled active\ns1 disabled active\ns2  inactive\n"}
    assert host_state_drift(read, wanted) == {"files": [], "services": ["k3s-agent", "iscsid"], "mtime": {}}


@pytest.mark.parametrize("read", [{"rc": 1, "stdout": ""}, {"failed": True}, None, {"rc": 0, "stdout": ""}])
def test_a_failed_or_empty_read_leaves_everything_to_the_modules(host: dict[str, Any], read: Any) -> None:
    wanted = dict(host, services=["k3s"])
    assert host_state_drift(read, wanted) == {"files": sorted(host["files"]), "services": ["k3s"],
                                              "mtime": {path: "none" for path in host["files"]}}


@pytest.mark.parametrize("wanted, message", [
    ([], "expected a mapping"),
    ({"files": []}, "files must be a mapping"),
    ({"files": {"/x": {"mode": "0644"}}}, "/x needs state directory or absent, or content or sha256"),
    ({"files": {"/x": {"state": "link"}}}, "/x needs state"),
])
def test_bad_wanted_is_refused(wanted: Any, message: str) -> None:
    for call in (lambda: host_state_script(wanted), lambda: host_state_drift({"rc": 0, "stdout": ""}, wanted)):
        with pytest.raises(AnsibleFilterError, match=message):
            call()
