"""Run the Argo CD API stand-in: ``python -m tests.standins.argocd_api --port 0``.

Prints one JSON line ``{"url": ..., "token": ..., "ca_path": ...}`` when ready
(also written to ``--ready-file``) and serves until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from .server import ArgoCDStandIn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 for VMs)")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--base-path", default="", help="like argocd-server --rootpath")
    parser.add_argument("--tls", action="store_true", help="serve https with a generated self-signed cert")
    parser.add_argument("--admin-password", default="admin-password")
    parser.add_argument("--token", default=None, help="a static admin token accepted by the server")
    parser.add_argument("--config", default="{}", help="JSON overriding the fake controller's knobs")
    parser.add_argument("--ready-file", type=Path, default=None)
    args = parser.parse_args(argv)
    standin = ArgoCDStandIn(host=args.host, port=args.port, base_path=args.base_path, tls=args.tls,
                            users={"admin": args.admin_password},
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
