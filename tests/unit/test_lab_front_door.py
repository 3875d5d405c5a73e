"""Issue 17, the lab's front door: `make lab` offline, lab secrets, the site stand-in's bind, temp dirs.

No VM is booted: the pre-flight refuses (or passes) before anything starts, and `up` is replaced
where cmd_lab's banner is checked.
"""
from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
VMLAB_DIR = REPO / "tests" / "vmlab"
sys.path.insert(0, str(VMLAB_DIR))
vmlab = importlib.import_module("vmlab")
mirror = importlib.import_module("mirror")

VERSION = "v1.34.1+k3s1"
MIRRORED = "{{ vmlab_mirror_url | default('https://github.com/k3s-io/k3s/releases/download') }}"


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VMLAB_CACHE", str(tmp_path / "cache"))
    for name in ("LAB_MIRROR", "LAB_MIRROR_ROOT", "LAB_STANDIN", "LAB_SKIP_CHECK"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "cache"


def settings(**more: str) -> dict[str, str]:
    return {"cluster_k3s_version": VERSION, "cluster_k3s_download_base_url": MIRRORED,
            "cluster_k3s_airgap_dir": "", **more}


def release(directory: Path) -> Path:
    source = directory.parent / "downloaded"
    source.mkdir(parents=True, exist_ok=True)
    (source / "k3s").write_bytes(b"binary")
    mirror.add(directory.parent, directory.name, [source / "k3s"])
    return directory


def test_lab_settings_are_read_from_the_lab_inventory() -> None:
    found = vmlab.lab_cluster_settings()
    assert found["cluster_k3s_version"].startswith("v") and "+k3s" in found["cluster_k3s_version"]
    assert "vmlab_mirror_url" in found["cluster_k3s_download_base_url"]
    assert found["cluster_k3s_airgap_dir"] == ""


def test_lab_doc_example_is_the_pinned_version() -> None:
    pinned = vmlab.lab_cluster_settings()["cluster_k3s_version"]
    text = (REPO / "docs" / "lab.md").read_text(encoding="utf-8")
    versions = set(__import__("re").findall(r"v\d+\.\d+\.\d+\+k3s\d+", text))
    assert versions == {pinned}, versions


@pytest.mark.parametrize("raw, mirror_on, expected", [
    (MIRRORED, True, None),
    (MIRRORED, False, "https://github.com/k3s-io/k3s/releases/download"),
    ("https://artifacts.example.org/k3s", False, "https://artifacts.example.org/k3s"),
    ("", False, vmlab.UPSTREAM_K3S),
])
def test_effective_base_url(raw: str, mirror_on: bool, expected: Any) -> None:
    assert vmlab.effective_base_url(raw, mirror_on) == expected


def test_other_templates_are_not_guessed() -> None:
    with pytest.raises(vmlab.VmlabError, match="LAB_SKIP_CHECK"):
        vmlab.effective_base_url("{{ my_mirror }}", False)


def test_empty_mirror_is_refused_naming_the_settings(tmp_path: Path) -> None:
    root = tmp_path / "mirror"
    with pytest.raises(vmlab.VmlabError) as caught:
        vmlab.lab_preflight(settings(), root, standin=False)
    text = str(caught.value)
    for needed in ("LAB_MIRROR=1", f"LAB_MIRROR_ROOT={root}", "cluster_k3s_download_base_url",
                   "cluster_k3s_airgap_dir", "LAB_STANDIN=1", f"{root}/{VERSION}"):
        assert needed in text, needed
    assert "k3s_install_base_url" not in text  # the role's name, not the inventory's


def test_filled_mirror_passes(tmp_path: Path) -> None:
    root = tmp_path / "mirror"
    release(root / VERSION)
    lines = vmlab.lab_preflight(settings(), root, standin=False)
    assert lines == [f"lab: K3S {VERSION} from the lab mirror LAB_MIRROR_ROOT={root}"]


def test_standin_fills_the_mirror_and_says_so(tmp_path: Path) -> None:
    root = tmp_path / "standin-mirror"
    lines = vmlab.lab_preflight(settings(), root, standin=True)
    assert (root / VERSION / "k3s").is_file() and (root / VERSION / "sha256sum-amd64.txt").is_file()
    assert "TRY-OUT" in lines[0] and "STAND-IN" in lines[0] and "not a Kubernetes cluster" in lines[0]


def test_standin_has_its_own_mirror_root(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    monkeypatch.setenv("LAB_MIRROR", "1")
    assert vmlab.lab_mirror_root() == cache / "mirror"
    monkeypatch.setenv("LAB_STANDIN", "1")
    assert vmlab.lab_mirror_root() == cache / "standin-mirror"


def test_unreachable_download_fails_fast_naming_the_variable() -> None:
    started = time.monotonic()
    with pytest.raises(vmlab.VmlabError) as caught:
        vmlab.lab_preflight(settings(cluster_k3s_download_base_url="http://127.0.0.1:1/k3s"), None,
                            standin=False, timeout=3)
    assert time.monotonic() - started < 5
    text = str(caught.value)
    assert "http://127.0.0.1:1/k3s/v1.34.1%2Bk3s1/sha256sum-amd64.txt" in text
    assert "cluster_k3s_download_base_url is http://127.0.0.1:1/k3s" in text and "LAB_MIRROR=1" in text


def test_reachable_download_passes(tmp_path: Path) -> None:
    root = tmp_path / "www"
    release(root / VERSION)
    info = mirror.start(root, tmp_path / "run" / "mirror.pid")
    try:
        lines = vmlab.lab_preflight(settings(cluster_k3s_download_base_url=info["url"]), None, standin=False)
    finally:
        mirror.stop(tmp_path / "run" / "mirror.pid")
    assert lines == [f"lab: K3S {VERSION} from {info['url']}"]


def test_airgap_dir_is_checked(tmp_path: Path) -> None:
    with pytest.raises(vmlab.VmlabError, match=r"cluster_k3s_airgap_dir \(.*\) cannot serve K3S"):
        vmlab.lab_preflight(settings(cluster_k3s_airgap_dir=str(tmp_path / "bundle")), None, standin=False)
    bundle = release(tmp_path / "bundle")
    assert "air-gapped" in vmlab.lab_preflight(settings(cluster_k3s_airgap_dir=str(bundle)), None, standin=False)[0]


def test_make_lab_offline_refuses_in_seconds_before_booting(tmp_path: Path, cache: Path) -> None:
    env = dict(os.environ, VMLAB_CACHE=str(cache), LAB_MIRROR="1", LAB_MIRROR_ROOT=str(tmp_path / "empty"),
               VMLAB_LAB_STATE=str(tmp_path / "state"))
    env.pop("LAB_STANDIN", None)
    started = time.monotonic()
    proc = subprocess.run([str(VMLAB_DIR / "lab.sh"), "up"], env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60, check=False)
    assert proc.returncode != 0 and time.monotonic() - started < 15, proc
    assert f"LAB_MIRROR_ROOT={tmp_path / 'empty'}" in proc.stderr and "LAB_STANDIN=1" in proc.stderr
    assert proc.stderr.count("ERROR") == 1, proc.stderr
    assert not (tmp_path / "state").exists(), "VM state was created before the refusal"
    assert not (cache / "images").exists(), "the image was built before the refusal"


def test_lab_banner_names_the_mirror_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LAB_MIRROR", "1")
    monkeypatch.setattr(vmlab, "down", lambda state: 0)
    monkeypatch.setattr(vmlab, "up", lambda opts: {"accel": "tcg", "boot_seconds": 1.0,
                                                   "mirror_vm_url": "http://10.0.2.2:4242"})
    vmlab.cmd_lab(argparse.Namespace(hosts_file=str(tmp_path / "hosts.yml"), servers=1, agents=2))
    out = capsys.readouterr().out
    assert "http://10.0.2.2:4242" in out and "{{" not in out


def test_lab_down_removes_generated_secrets(tmp_path: Path) -> None:
    secrets = tmp_path / "inventories" / "lab" / ".secrets"
    secrets.mkdir(parents=True)
    (secrets / "cluster_token").write_text("t", encoding="utf-8")
    kubeconfig = tmp_path / ".kube" / "lab.yaml"
    kubeconfig.parent.mkdir()
    kubeconfig.write_text("k", encoding="utf-8")
    absent = tmp_path / "inventories" / "lab" / ".token"
    assert vmlab.remove_lab_secrets((secrets, absent, kubeconfig)) == [secrets, kubeconfig]
    assert not secrets.exists() and not kubeconfig.exists() and kubeconfig.parent.is_dir()


def test_lab_down_knows_where_the_lab_inventory_writes_its_secrets() -> None:
    vault = (REPO / "inventories" / "lab" / "group_vars" / "all" / "vault.yml").read_text(encoding="utf-8")
    assert "inventory_dir ~ '/.secrets/" in vault
    assert REPO / "inventories" / "lab" / ".secrets" in vmlab.LAB_GENERATED_SECRETS


def test_site_scenario_standin_binds_loopback_only() -> None:
    prepare = (REPO / "molecule" / "site" / "prepare.yml").read_text(encoding="utf-8")
    assert "--host 127.0.0.1" in prepare
    assert "0.0.0.0" not in "\n".join(l for l in prepare.splitlines() if not l.lstrip().startswith("#"))


def test_unit_modules_leave_no_temporary_directory(tmp_path: Path) -> None:
    """Importing (collecting) every unit test module leaves TMPDIR as it was once the process exits."""
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    env = dict(os.environ, TMPDIR=str(scratch))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider",
                           "--basetemp", str(tmp_path / "basetemp"), str(REPO / "tests" / "unit" / "standins")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert sorted(p.name for p in scratch.iterdir()) == []
