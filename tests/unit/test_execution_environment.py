"""The execution environment: `ansible-builder create` turns meta/ee/execution-environment.yml into a
build context that installs this collection, its Galaxy dependencies as galaxy.yml declares them,
and the collection's Python and system requirements; and the collection tarball carries the
metadata (meta/execution-environment.yml) through which ansible-builder finds those requirements
when it introspects the installed collection during the image build. Building the image needs a
container registry, PyPI and Galaxy, and is not tested here.

This is what `make ee` does, in a temporary copy of the repo so that nothing is written in it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())
TARBALL = "dictamesh-k3s_gitops.tar.gz"


def _run(*cmd: str | Path, cwd: Path = REPO) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"{cmd}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    return proc


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("ee")
    # A private copy: building from a tree that changes under ansible-galaxy gives a tarball whose
    # checksums do not match its files.
    copy = tmp / "repo"
    shutil.copytree(REPO, copy, symlinks=True,
                    ignore=lambda d, names: [n for n in names if (n.startswith(".") and n != ".ansible-lint")
                                             or (Path(d) == REPO and n == "build")])
    out = copy / "build" / "ee-collection"
    out.mkdir(parents=True)
    _run(BIN / "ansible-galaxy", "collection", "build", "--output-path", out, ".", cwd=copy)
    (built,) = out.glob("dictamesh-k3s_gitops-*.tar.gz")
    built.rename(out / TARBALL)
    ctx = tmp / "context"
    _run(BIN / "ansible-builder", "create", "-f", copy / "meta" / "ee" / "execution-environment.yml",
         "-c", ctx, "--output-filename", "Containerfile")
    return ctx


def test_context_installs_the_collection_and_its_galaxy_dependencies(context):
    requirements = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    entries = {c["name"]: c for c in requirements["collections"]}
    ours = entries.pop(f"collections/{TARBALL}")
    assert ours["type"] == "file"
    assert (context / "_build" / "collections" / TARBALL).is_file()
    # The same collections and version ranges galaxy.yml declares, no more, no fewer.
    assert {name: c.get("version", "*") for name, c in entries.items()} == GALAXY["dependencies"]


def test_collection_in_context_is_this_one_with_its_metadata(context):
    with tarfile.open(context / "_build" / "collections" / TARBALL) as tar:
        manifest = json.load(tar.extractfile("MANIFEST.json"))
        names = set(tar.getnames())
    info = manifest["collection_info"]
    assert (info["namespace"], info["name"], info["version"]) == (GALAXY["namespace"], GALAXY["name"], GALAXY["version"])
    assert info["dependencies"] == GALAXY["dependencies"]
    # Not dropped by build_ignore: ansible-builder reads these from the installed collection.
    meta = yaml.safe_load((REPO / "meta" / "execution-environment.yml").read_text())
    assert {"meta/execution-environment.yml", meta["dependencies"]["python"], meta["dependencies"]["system"]} <= names


def test_context_python_and_system_requirements(context):
    python = (context / "_build" / "requirements.txt").read_text()
    assert python == (REPO / "meta" / "ee-requirements.txt").read_text()
    assert "passlib" in python and "bcrypt" in python
    bindep = (context / "_build" / "bindep.txt").read_text()
    from bindep.depends import Depends  # noqa: PLC0415 (bindep comes with ansible-builder)
    depends = Depends(bindep)
    assert [r[0] for r in depends.active_rules(["platform:rpm", "platform:centos"])] == ["openssh-clients"]
    assert [r[0] for r in depends.active_rules(["platform:dpkg", "platform:debian"])] == ["openssh-client"]


def test_containerfile_pins_ansible_core_and_introspects(context):
    containerfile = (context / "Containerfile").read_text()
    pinned = next(line for line in (REPO / "requirements-dev.txt").read_text().splitlines()
                  if line.startswith("ansible-core=="))
    assert f'ARG ANSIBLE_INSTALL_REFS="{pinned} ansible-runner"' in containerfile
    assert "ansible-galaxy collection install" in containerfile and "-r requirements.yml" in containerfile
    assert "introspect.py introspect" in containerfile


def test_builder_introspection_finds_the_collection_requirements(context, tmp_path):
    # What the image build's builder stage runs, here against the collection installed from the
    # tarball in the context (without its Galaxy dependencies, which need Galaxy).
    cols = tmp_path / "collections"
    _run(BIN / "ansible-galaxy", "collection", "install", "--no-deps", "--force", "-p", cols,
         context / "_build" / "collections" / TARBALL)
    out = _run(sys.executable, context / "_build" / "scripts" / "introspect.py", "introspect", cols).stdout
    data = yaml.safe_load(out.split("---", 1)[1])
    python = [line.split("#")[0].strip() for line in data["python"]]
    system = [line.split("#")[0].strip() for line in data["system"]]
    assert python == ["passlib>=1.7.4", "bcrypt>=4.0.0", "kubernetes>=24.2.0"]
    assert system == ["openssh-clients [platform:rpm]", "openssh-client [platform:dpkg]"]
    assert all("dictamesh.k3s_gitops" in line for line in data["python"] + data["system"])
