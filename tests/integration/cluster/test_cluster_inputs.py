"""Bad input is rejected before any host changes, with a message naming the variable.

playbooks/k3s_cluster.yml runs against a throw-away inventory whose hosts are all the
controller (connection local). Its first play only reads (facts, stat, the mirror's checksum
file); every error case must stop there: the next play ("Prepare the nodes") never starts.
The positive controls run the validation play alone (`--tags k3s_validate`) and must pass.
K3S release assets come from the K3S stand-in on a local artifact mirror (tests/vmlab/mirror.py).
The binary tests run k3s_install's download step alone into a temp dir (binary.yml: validate, then the
entry point stage); stage.yml runs the entry points release and stage as an upgrade does.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests/standins/k3s"))
sys.path.insert(0, str(REPO / "tests/vmlab"))

import build_mirror  # noqa: E402
import mirror  # noqa: E402

VERSION = "v1.34.1+k3s1"
OTHER = "v1.34.2+k3s1"
PLAYBOOK = REPO / "playbooks/k3s_cluster.yml"
BINARY = Path(__file__).resolve().parent / "binary.yml"
NEXT_PLAY = "PLAY [Prepare the nodes]"


@pytest.fixture(scope="module")
def mirror_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The mirror's URL and its request log (one line per request)."""
    root = tmp_path_factory.mktemp("mirror")
    build_mirror.build(root / "good", [VERSION, OTHER])
    build_mirror.build(root / "bad", [VERSION], corrupt=[VERSION])
    pidfile = root / "mirror.pid"
    info = mirror.start(root, pidfile)
    yield {"url": str(info["url"]), "log": pidfile.with_suffix(".log")}
    mirror.stop(pidfile)


@pytest.fixture(scope="module")
def mirror_url(mirror_server: dict[str, Any]) -> str:
    return str(mirror_server["url"])


def gets(log: Path, path: str) -> int:
    """How many GET requests of path the mirror has logged."""
    return sum(f'"GET {path} ' in line for line in log.read_text(encoding="utf-8").splitlines())


def run(playbook: Path, tmp_path: Path, inventory: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [str(REPO / ".venv/bin/ansible-playbook"), str(playbook), *args]
    if inventory is not None:
        inv = tmp_path / "inventory.yml"
        inv.write_text(yaml.safe_dump(inventory), encoding="utf-8")
        cmd += ["-i", str(inv)]
    else:
        cmd += ["-i", "localhost,"]
    if extra:
        ext = tmp_path / "extra.json"
        ext.write_text(json.dumps(extra), encoding="utf-8")
        cmd += ["-e", f"@{ext}"]
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0", ANSIBLE_STDOUT_CALLBACK="default")
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)


def cluster(servers: int = 1, agents: int = 1, **cluster_vars: Any) -> dict[str, Any]:
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    base = {"cluster_k3s_version": VERSION, "cluster_token": "integration-test-token-0123456789",
            "cluster_k3s_download_base_url": "http://127.0.0.1:1/unused"}
    base.update(cluster_vars)
    base = {k: v for k, v in base.items() if v is not None}
    return {"k3s_cluster": {
        "vars": dict(local, **base),
        "children": {
            "k3s_servers": {"hosts": {f"s{i}": {"node_name": f"s{i}"} for i in range(1, servers + 1)}},
            "k3s_agents": {"hosts": {f"a{i}": {"node_name": f"a{i}"} for i in range(1, agents + 1)}},
        }}}


def assert_rejected(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert NEXT_PLAY not in output, "a host was changed before the input was rejected"
    for needle in needles:
        assert needle in output, f"{needle!r} not in output:\n{output[-3000:]}"


def test_valid_input_passes_validation(tmp_path: Path, mirror_url: str) -> None:
    inventory = cluster(servers=3, agents=2, cluster_k3s_download_base_url=f"{mirror_url}/good")
    result = run(PLAYBOOK, tmp_path, inventory, None, "--tags", "k3s_validate")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr


def test_limit_without_the_first_server_is_refused(tmp_path: Path, mirror_url: str) -> None:
    inventory = cluster(servers=3, agents=2, cluster_k3s_download_base_url=f"{mirror_url}/good")
    assert_rejected(run(PLAYBOOK, tmp_path, inventory, None, "--limit", "a2"),
                    "The first server s1 is not in this run", "--limit a2,s1")


def test_limit_with_the_first_server_passes_and_reads_the_others_from_the_inventory(
        tmp_path: Path, mirror_url: str) -> None:
    inventory = cluster(servers=3, agents=2, cluster_k3s_download_base_url=f"{mirror_url}/good")
    servers = inventory["k3s_cluster"]["children"]["k3s_servers"]["hosts"]
    servers["s2"]["node_ip"] = "192.0.2.12"
    servers["s3"]["ansible_host"] = "192.0.2.13"
    result = run(PLAYBOOK, tmp_path, inventory, None, "--tags", "k3s_validate", "--limit", "a2,s1", "-v")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert "k3s_cluster_node_ip: 192.0.2.12" in result.stdout  # ansible.cfg: YAML results
    assert "k3s_cluster_node_ip: 192.0.2.13" in result.stdout
    recap = result.stdout.split("PLAY RECAP", 1)[1].splitlines()[1:]
    assert {"a2", "s1"} == {line.split()[0] for line in recap if line.strip()}


def test_even_server_count(tmp_path: Path, mirror_url: str) -> None:
    inventory = cluster(servers=2, cluster_k3s_download_base_url=f"{mirror_url}/good")
    assert_rejected(run(PLAYBOOK, tmp_path, inventory), "k3s_servers has 2 hosts", "odd number")


@pytest.mark.parametrize("version", ["1.34.1", "v1.34.1", "v1.34.1-k3s1", "latest"])
def test_malformed_version(tmp_path: Path, mirror_url: str, version: str) -> None:
    inventory = cluster(cluster_k3s_version=version, cluster_k3s_download_base_url=f"{mirror_url}/good")
    assert_rejected(run(PLAYBOOK, tmp_path, inventory), "cluster_k3s_version is", version)


@pytest.mark.parametrize(("token", "problem"), [(None, "undefined"), ("  ", "empty"),
                                                ("CHANGE-ME-cluster-token", "still the CHANGE-ME placeholder")])
def test_missing_token(tmp_path: Path, mirror_url: str, token: str | None, problem: str) -> None:
    inventory = cluster(cluster_token=token, cluster_k3s_download_base_url=f"{mirror_url}/good")
    result = run(PLAYBOOK, tmp_path, inventory)
    assert_rejected(result, f"cluster_token is {problem}")
    if token and token.strip():
        assert token not in result.stdout + result.stderr


def test_unknown_arch(tmp_path: Path, mirror_url: str) -> None:
    inventory = cluster(cluster_k3s_arch="riscv64", cluster_k3s_download_base_url=f"{mirror_url}/good")
    assert_rejected(run(PLAYBOOK, tmp_path, inventory), "cluster_k3s_arch", "amd64 and arm64 only")


def test_release_missing_on_mirror(tmp_path: Path, mirror_url: str) -> None:
    inventory = cluster(cluster_k3s_version="v1.99.0+k3s1", cluster_k3s_download_base_url=f"{mirror_url}/good")
    assert_rejected(run(PLAYBOOK, tmp_path, inventory), "k3s_install_base_url", "v1.99.0%2Bk3s1/sha256sum-amd64.txt")


def binary_vars(tmp_path: Path, base_url: str, **more: Any) -> dict[str, Any]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    return dict({"ansible_python_interpreter": sys.executable,
                 "k3s_install_version": VERSION, "k3s_install_base_url": base_url,
                 "k3s_install_token": "unused-token", "k3s_install_bin_dir": str(bin_dir)}, **more)


def test_wrong_checksum_from_mirror_installs_nothing(tmp_path: Path, mirror_url: str) -> None:
    result = run(BINARY, tmp_path, None, binary_vars(tmp_path, f"{mirror_url}/bad"))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "k3s_install_base_url" in output and "did not match" in output, output[-3000:]
    assert not (tmp_path / "bin/k3s").exists()
    assert list((tmp_path / "bin").iterdir()) == []


def test_download_verified_and_idempotent(tmp_path: Path, mirror_url: str) -> None:
    first = run(BINARY, tmp_path, None, binary_vars(tmp_path, f"{mirror_url}/good"))
    assert first.returncode == 0, first.stdout[-3000:]
    assert "changed=1" in first.stdout
    k3s = tmp_path / "bin/k3s"
    assert oct(k3s.stat().st_mode & 0o777) == "0o755"
    assert subprocess.run([sys.executable, str(k3s), "--version"], capture_output=True, text=True, check=True).stdout.startswith(
        f"k3s version {VERSION} ")
    second = run(BINARY, tmp_path, None, binary_vars(tmp_path, f"{mirror_url}/good"))
    assert second.returncode == 0 and "changed=0" in second.stdout, second.stdout[-3000:]


def test_installed_other_version_is_refused(tmp_path: Path, mirror_url: str) -> None:
    first = run(BINARY, tmp_path, None, binary_vars(tmp_path, f"{mirror_url}/good"))
    assert first.returncode == 0, first.stdout[-3000:]
    before = hashlib.sha256((tmp_path / "bin/k3s").read_bytes()).hexdigest()
    result = run(BINARY, tmp_path, None, binary_vars(tmp_path, f"{mirror_url}/good", k3s_install_version=OTHER))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"is {VERSION} but k3s_install_version asks for {OTHER}" in output, output[-3000:]
    assert "playbooks/upgrade_k3s.yml" in output
    assert hashlib.sha256((tmp_path / "bin/k3s").read_bytes()).hexdigest() == before


def test_airgap_bundle_verified_on_controller(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    build_mirror.build(bundle, [VERSION], corrupt=[VERSION])
    result = run(BINARY, tmp_path, None, binary_vars(tmp_path, "http://127.0.0.1:1/unused",
                                                     k3s_install_airgap_dir=str(bundle / VERSION)))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "(k3s_install_airgap_dir) does not match sha256sum-amd64.txt" in output, output[-3000:]
    assert not (tmp_path / "bin/k3s").exists()
    shutil.rmtree(bundle)
    build_mirror.build(bundle, [VERSION])
    good = run(BINARY, tmp_path, None, binary_vars(tmp_path, "http://127.0.0.1:1/unused",
                                                   k3s_install_airgap_dir=str(bundle / VERSION)))
    assert good.returncode == 0, good.stdout[-3000:]
    assert (tmp_path / "bin/k3s").read_bytes() == (bundle / VERSION / "k3s").read_bytes()


def test_a_run_reads_the_checksums_and_the_version_once_per_release_and_binary(
        tmp_path: Path, mirror_server: dict[str, Any]) -> None:
    """site.yml validates each host in its pre-flight play and again in the servers' and agents' plays:
    the later runs reuse the checksums of the same release and the version of the same binary file."""
    good = f"{mirror_server['url']}/good"
    first = run(BINARY, tmp_path, None, binary_vars(tmp_path, good))
    assert first.returncode == 0, first.stdout[-3000:]
    sums = {v: f"/good/{v.replace('+', '%2B')}/sha256sum-amd64.txt" for v in (VERSION, OTHER)}
    before = {v: gets(mirror_server["log"], path) for v, path in sums.items()}
    out = tmp_path / "reads.json"
    harness = binary_vars(tmp_path, good, validate_twice_other=OTHER, validate_twice_out=str(out))
    harness["validate_twice_version"] = harness.pop("k3s_install_version")
    result = run(VALIDATE_TWICE, tmp_path, None, harness)
    assert result.returncode == 0, result.stdout[-3000:]
    reads = json.loads(out.read_text(encoding="utf-8"))
    assert [(r["run"], r["version"], r["sums"]) for r in reads[:3]] == [
        ("first", True, True), ("second", False, False), ("third", True, False)]
    assert reads[3]["run"] == "other" and reads[3]["sums"] is True
    after = {v: gets(mirror_server["log"], path) for v, path in sums.items()}
    assert {v: after[v] - before[v] for v in sums} == {VERSION: 1, OTHER: 1}


FILES = Path(__file__).resolve().parent / "files.yml"


@pytest.mark.skipif(os.geteuid() != 0, reason="k3s_install writes its files as root:root")
def test_files_read_once_and_written_only_when_they_differ(tmp_path: Path, mirror_url: str) -> None:
    """files.yml's one read finds the files its own tasks wrote as they want them (the template lookup
    renders the unit byte for byte as the template module does), so a re-run runs none of them; a file
    changed by hand is found and written again, and only that one."""
    out, etc = tmp_path / "drift.json", tmp_path / "etc"
    harness = binary_vars(tmp_path, f"{mirror_url}/good", files_out=str(out), k3s_install__config_dir=str(etc),
                          k3s_install__unit_path=str(tmp_path / "k3s.service"), k3s_install__restart_needless=True,
                          k3s_install_config={"token-file": "/etc/rancher/k3s/token", "node-name": "s1"},
                          k3s_install_registries={"mirrors": {"docker.io": {"endpoint": ["https://mirror.example"]}}})
    wanted = sorted([str(etc), str(tmp_path / "bin/k3s"), str(tmp_path / "k3s.service")]
                    + [str(etc / name) for name in ("config.yaml", "registries.yaml", "token")])
    first = run(FILES, tmp_path, None, harness)
    assert first.returncode == 0 and "changed=6" in first.stdout, first.stdout[-3000:]
    drift = json.loads(out.read_text(encoding="utf-8"))
    assert (drift["files"], drift["services"]) == (wanted, ["k3s"])
    assert set(drift["mtime"].values()) == {"none"}
    assert oct((etc / "token").stat().st_mode & 0o777) == "0o600"
    second = run(FILES, tmp_path, None, harness)
    assert second.returncode == 0 and "changed=0" in second.stdout, second.stdout[-3000:]
    assert json.loads(out.read_text(encoding="utf-8"))["files"] == []
    (etc / "config.yaml").chmod(0o644)
    (tmp_path / "k3s.service").write_text("edited by hand\n", encoding="utf-8")
    third = run(FILES, tmp_path, None, harness)
    assert third.returncode == 0 and "changed=2" in third.stdout, third.stdout[-3000:]
    assert json.loads(out.read_text(encoding="utf-8"))["files"] == [str(etc / "config.yaml"), str(tmp_path / "k3s.service")]
    assert oct((etc / "config.yaml").stat().st_mode & 0o777) == "0o600"
    assert "edited by hand" not in (tmp_path / "k3s.service").read_text(encoding="utf-8")
    for result in (first, second, third):
        assert "unused-token" not in result.stdout + result.stderr  # the token (binary_vars)


VALIDATE_TWICE = Path(__file__).resolve().parent / "validate_twice.yml"
STAGE = Path(__file__).resolve().parent / "stage.yml"


def test_release_and_stage_entry_points_leave_the_installed_k3s_alone(tmp_path: Path, mirror_url: str) -> None:
    """The upgrade's entry points: release checks a newer release on a node running another one (no
    version-change refusal, no token, nothing changed); stage puts the verified binary beside it."""
    first = run(BINARY, tmp_path, None, binary_vars(tmp_path, f"{mirror_url}/good"))
    assert first.returncode == 0, first.stdout[-3000:]
    installed = hashlib.sha256((tmp_path / "bin/k3s").read_bytes()).hexdigest()
    upgrade = {"ansible_python_interpreter": sys.executable, "k3s_install_version": OTHER,
               "k3s_install_base_url": f"{mirror_url}/good", "k3s_install_bin_dir": str(tmp_path / "bin")}
    checked = run(STAGE, tmp_path, None, upgrade)
    assert checked.returncode == 0 and "changed=0" in checked.stdout, checked.stdout[-3000:]
    stage = tmp_path / "stage"
    stage.mkdir()
    staged = run(STAGE, tmp_path, None, dict(upgrade, k3s_install_stage_dir=str(stage)))
    assert staged.returncode == 0 and "changed=1" in staged.stdout, staged.stdout[-3000:]
    assert subprocess.run([sys.executable, str(stage / "k3s"), "--version"], capture_output=True, text=True,
                          check=True).stdout.startswith(f"k3s version {OTHER} ")
    assert hashlib.sha256((tmp_path / "bin/k3s").read_bytes()).hexdigest() == installed
    missing = run(STAGE, tmp_path, None, dict(upgrade, k3s_install_version="v1.99.0+k3s1",
                                              k3s_install_stage_dir=str(stage)))
    assert missing.returncode != 0
    assert "v1.99.0%2Bk3s1/sha256sum-amd64.txt" in missing.stdout + missing.stderr
