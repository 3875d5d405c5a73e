"""The built collection holds the tracked sources only: no secret, cache, lab state or test credential.

A copy of the tracked tree gets the files a user's checkout really accumulates (`make lab`'s
generated secrets and hosts file, pytest and molecule caches, molecule's ephemeral inventory with
its test token, a fetched kubeconfig, etcd snapshots); `ansible-galaxy collection build` must
leave every one of them out, and every file it packs must be a tracked one.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

# path in the checkout -> mode; each is a kind of file that must never ship.
PLANTED = {
    "inventories/lab/.secrets/cluster_token": 0o600,
    "inventories/lab/.secrets/argocd_admin_password": 0o600,
    "inventories/lab/hosts.yml": 0o644,
    "inventories/lab/.token": 0o600,
    "inventories/mysite/.secrets/cluster_token": 0o600,
    ".pytest_cache/v/cache/nodeids": 0o644,
    "tests/unit/.pytest_cache/v/cache/lastfailed": 0o644,
    ".ansible/tmp/molecule.Ab12.site/inventory/ansible_inventory.yml": 0o600,
    ".ansible/tmp/molecule.Ab12.site/argocd-standin/admin-password": 0o600,
    "molecule/site/.ansible/tmp/cluster_token": 0o600,
    "molecule/site/.molecule/state.yml": 0o644,
    ".kube/lab.yaml": 0o600,
    "backups/lab/etcd-snapshot-1": 0o600,
    ".cache/dictamesh-vmlab/id_ed25519": 0o600,
    "tests/output/mirror/v1.34.1+k3s1/k3s": 0o755,
    ".vault_pass.txt": 0o600,
    "site.retry": 0o644,
    "tests/vmlab/mirror.log": 0o644,
    ".mypy_cache/3.11/cache.db": 0o644,
}
SECRET = "planted-secret-" + uuid.uuid4().hex  # made at run time: this file itself ships


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], check=True, capture_output=True)
    return [name for name in out.stdout.decode().split("\0") if name]


def test_tarball_holds_tracked_files_only(tmp_path: Path) -> None:
    tree = tmp_path / "checkout"
    tracked = tracked_files()
    for name in tracked:
        source = REPO / name
        if source.is_file():  # a tracked file another change deleted in the work tree
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, tree / name)
    for name, mode in PLANTED.items():
        path = tree / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{SECRET} {name}\n", encoding="utf-8")
        path.chmod(mode)

    out = tmp_path / "out"
    subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(out), str(tree)],
                   cwd=tmp_path, check=True, capture_output=True, text=True)
    tarball = next(out.glob("dictamesh-k3s_gitops-*.tar.gz"))
    with tarfile.open(tarball) as archive:
        members = [m for m in archive.getmembers() if m.isfile()]
        names = {m.name for m in members}
        leaked = [m.name for m in members
                  if SECRET.encode() in archive.extractfile(m).read()]  # type: ignore[union-attr]

    assert not sorted(set(PLANTED) & names), "planted files packed"
    assert not leaked, f"files holding a planted secret packed: {leaked}"
    assert "playbooks/site.yml" in names and "roles/k3s_server/tasks/kubeconfig.yml" in names
    untracked = sorted(names - set(tracked) - {"MANIFEST.json", "FILES.json"})
    assert not untracked, f"files packed that git does not track: {untracked}"
