"""Write a stand-in Argo CD CLI into a controller directory, laid out like a release.

    build.py --dir DIR [--version v3.6.0] [--corrupt]

DIR gets `argocd-linux-amd64` and `argocd-linux-arm64` (a POSIX sh script, the version baked
in) and `cli_checksums.txt` (`<sha256>  <asset>` lines, the format of the upstream release
asset), which is what the argocd_cli role's air-gapped input `argocd_cli_local_dir` expects.
The stand-in only answers `argocd version --client [--short]`; any other command exits 1
saying it is a stand-in (the real CLI cannot be downloaded on the test machines).
NOT the Argo CD CLI; never ships in roles/ or plugins/.

--corrupt changes the amd64 binary after its checksum was written (the role must refuse it).
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Sequence

DEFAULT_VERSION = "v3.6.0"
ARCHES = ("amd64", "arm64")
SCRIPT = """#!/bin/sh
# Argo CD CLI stand-in (tests/standins/argocd_cli/build.py): NOT the Argo CD CLI.
VERSION="__VERSION__"
ARCH="__ARCH__"
if [ "$1" = "version" ]; then
  case " $* " in
    *" --client "*) ;;
    *) echo "the Argo CD CLI stand-in has no server: use 'argocd version --client'" >&2; exit 1 ;;
  esac
  case " $* " in
    *" --short "*) echo "argocd: ${VERSION}+standin" ;;
    *) printf 'argocd: %s+standin\\n  BuildDate: 2020-01-01T00:00:00Z\\n  Platform: linux/%s\\n' \\
         "$VERSION" "$ARCH" ;;
  esac
  exit 0
fi
echo "the Argo CD CLI stand-in does not implement: argocd $*" >&2
exit 1
"""


def cli_for(version: str, arch: str) -> bytes:
    """The stand-in CLI script for one version and architecture."""
    return SCRIPT.replace("__VERSION__", version).replace("__ARCH__", arch).encode()


def write_dir(target: Path, version: str, corrupt: bool = False) -> dict[str, str]:
    """Write the assets and cli_checksums.txt into target; return {asset: sha256}."""
    if not version.startswith("v"):
        raise ValueError(f"version {version!r}: expected vX.Y.Z")
    target.mkdir(parents=True, exist_ok=True)
    sums: dict[str, str] = {}
    for arch in ARCHES:
        asset = f"argocd-linux-{arch}"
        data = cli_for(version, arch)
        sums[asset] = hashlib.sha256(data).hexdigest()
        path = target / asset
        path.write_bytes(data + (b"# corrupted\n" if corrupt and arch == "amd64" else b""))
        path.chmod(0o755)
    lines = "".join(f"{digest}  {asset}\n" for asset, digest in sorted(sums.items()))
    (target / "cli_checksums.txt").write_text(lines, encoding="utf-8")
    return sums


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, required=True, help="controller directory to fill")
    parser.add_argument("--version", default=DEFAULT_VERSION)
    parser.add_argument("--corrupt", action="store_true", help="amd64 binary not matching its checksum")
    args = parser.parse_args(argv)
    sums = write_dir(args.dir, args.version, args.corrupt)
    for asset, digest in sorted(sums.items()):
        print(f"{digest}  {args.dir / asset}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
