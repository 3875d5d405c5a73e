"""The built collection installs into an empty path and its playbooks resolve from there."""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, check=True, capture_output=True, text=True)


def test_built_tarball_installs_and_site_playbook_resolves(tmp_path: Path) -> None:
    run(str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path), str(REPO), cwd=REPO)
    tarball = next(tmp_path.glob("dictamesh-k3s_gitops-*.tar.gz"))
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    assert "playbooks/site.yml" in names
    assert not [name for name in names if name.startswith((".venv", ".collections", "build/"))]

    install_path = tmp_path / "collections"
    # Outside the checkout, with only the installed copy on the collections path.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_COLLECTIONS_PATH"] = str(install_path)
    # Dependencies come with the `ansible` package in the venv; Galaxy is not reachable.
    run(str(BIN / "ansible-galaxy"), "collection", "install", "--no-deps", "--force", "-p", str(install_path), str(tarball),
        cwd=tmp_path, env=env)
    assert (install_path / "ansible_collections/dictamesh/k3s_gitops/MANIFEST.json").is_file()

    inventory = REPO / "inventories" / "prod"
    result = run(
        str(BIN / "ansible-playbook"), "-i", str(inventory), "--syntax-check", "dictamesh.k3s_gitops.site",
        cwd=tmp_path, env=env,
    )
    installed_site = install_path / "ansible_collections/dictamesh/k3s_gitops/playbooks/site.yml"
    assert f"playbook: {installed_site}" in result.stdout
