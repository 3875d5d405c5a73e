"""Run the Argo CD API stand-in: ``python -m tests.standins.argocd_api --port 0``.

Prints one JSON line ``{"url": ..., "token": ..., "ca_path": ...}`` when ready
(also written to ``--ready-file``) and serves until SIGINT/SIGTERM.

The admin password comes from ``--admin-password-file`` (first line; the file must
not be accessible to group or others), or ``--admin-password`` (visible in the process
list: throw-away local runs only), else from the environment variable
``ARGOCD_STANDIN_ADMIN_PASSWORD``, else it is ``admin-password``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import stat
import sys
import threading
from pathlib import Path
from typing import Mapping, Optional

from .server import ArgoCDStandIn

PASSWORD_ENV = "ARGOCD_STANDIN_ADMIN_PASSWORD"
DEFAULT_PASSWORD = "admin-password"


class PasswordSourceError(ValueError):
    pass


def read_password_file(path: Path) -> str:
    """The first line of ``path``; refused when group or others may read or write the file."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PasswordSourceError("%s is mode %04o: the admin password file must be 0600 (or 0400)"
                                  % (path, stat.S_IMODE(mode)))
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or not lines[0]:
        raise PasswordSourceError("%s is empty: put the admin password on its first line" % path)
    return lines[0]


def admin_password(password_file: Optional[Path], password_arg: Optional[str],
                   environ: Mapping[str, str]) -> str:
    """The admin password: the file or the argument (exclusive), then the environment, then the default."""
    if password_file is not None:
        return read_password_file(password_file)
    if password_arg:
        return password_arg
    return environ.get(PASSWORD_ENV) or DEFAULT_PASSWORD


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 for VMs)")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--base-path", default="", help="like argocd-server --rootpath")
    parser.add_argument("--tls", action="store_true", help="serve https with a generated self-signed cert")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--admin-password-file", type=Path, default=None,
                        help="file whose first line is the admin password (mode 0600)")
    source.add_argument("--admin-password", default=None,
                        help="admin password on the command line (visible to ps; prefer the file or %s)"
                        % PASSWORD_ENV)
    parser.add_argument("--token", default=None, help="a static admin token accepted by the server")
    parser.add_argument("--config", default="{}", help="JSON overriding the fake controller's knobs")
    parser.add_argument("--ready-file", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        password = admin_password(args.admin_password_file, args.admin_password, os.environ)
    except (OSError, PasswordSourceError) as exc:
        parser.error(str(exc))
    standin = ArgoCDStandIn(host=args.host, port=args.port, base_path=args.base_path, tls=args.tls,
                            users={"admin": password},
                            static_tokens=[args.token] if args.token else None,
                            config=json.loads(args.config))
    standin.start()
    ready = {"url": standin.url, "server_url": standin.server_url, "base_path": standin.base_path,
             "port": standin.port, "token": args.token,
             "ca_path": str(standin.cert_path) if standin.cert_path else None}
    line = json.dumps(ready)
    if args.ready_file:
        args.ready_file.write_text(line + "\n")
    print(line, flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    standin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
