"""Local artifact mirror: serves a directory laid out like the K3S release download URL.

    <root>/<version>/<asset>      e.g. <root>/v1.33.5+k3s1/k3s, .../sha256sum-amd64.txt

Clients use the upstream form `<url>/v1.33.5%2Bk3s1/k3s` (percent-encoded, as on GitHub); the
server decodes it. A directory literally named `v1.33.5%2Bk3s1` works too (fallback).
VMs on QEMU's user-mode network reach the controller's 127.0.0.1 as 10.0.2.2, so the server
binds 127.0.0.1 by default and `vm_url` is `http://10.0.2.2:<port>`.

CLI:
  python3 tests/vmlab/mirror.py start --root DIR --pidfile FILE [--port N] [--bind ADDR]   (daemon; prints JSON)
  python3 tests/vmlab/mirror.py stop --pidfile FILE                                         (idempotent)
  python3 tests/vmlab/mirror.py url --pidfile FILE [--vm]                                   (prints the base URL)
  python3 tests/vmlab/mirror.py add --root DIR --version V FILE...    (copy assets, refresh sha256sum-amd64.txt)
  python3 tests/vmlab/mirror.py serve ...                             (foreground; used by start)
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any, Sequence

VM_HOST = "10.0.2.2"
CHECKSUM_FILE = "sha256sum-amd64.txt"


class MirrorHandler(http.server.SimpleHTTPRequestHandler):
    """Static files; no directory listings outside root; quiet unless a log file is set."""

    def translate_path(self, path: str) -> str:
        decoded = super().translate_path(path)
        if os.path.exists(decoded):
            return decoded
        # Fallback: the literal (still percent-encoded) name on disk.
        raw = urllib.parse.urlsplit(path).path
        root = Path(self.directory).resolve()
        literal = (root / raw.lstrip("/")).resolve()
        if literal == root or root in literal.parents:
            return str(literal)
        return decoded

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        sys.stderr.write("%s %s\n" % (self.log_date_time_string(), format % args))


def serve(root: Path, bind: str, port: int, info_file: Path | None) -> None:
    handler = functools.partial(MirrorHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer((bind, port), handler)
    real_port = int(server.server_address[1])
    if info_file:
        info = {"root": str(root), "pid": os.getpid(), "port": real_port, "bind": bind,
                "url": f"http://{'127.0.0.1' if bind == '0.0.0.0' else bind}:{real_port}",
                "vm_url": f"http://{VM_HOST}:{real_port}"}
        tmp = info_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(info), encoding="utf-8")
        os.replace(tmp, info_file)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever()
    finally:
        server.server_close()


def info_path(pidfile: Path) -> Path:
    return pidfile.with_suffix(".json")


def running_pid(pidfile: Path) -> int | None:
    """Pid of a mirror started with this pidfile, if it still runs (guards recycled pids)."""
    try:
        pid = int(pidfile.read_text(encoding="utf-8").strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (OSError, ValueError):
        return None
    return pid if "mirror.py" in cmdline and str(pidfile) in cmdline else None


def read_info(pidfile: Path) -> dict[str, Any]:
    return dict(json.loads(info_path(pidfile).read_text(encoding="utf-8")))


def start(root: Path, pidfile: Path, bind: str = "127.0.0.1", port: int = 0,
          timeout: float = 15.0) -> dict[str, Any]:
    """Start the daemon (or reuse the running one) and return its info (url, vm_url, port)."""
    root, pidfile = root.resolve(), pidfile.resolve()
    root.mkdir(parents=True, exist_ok=True)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    if running_pid(pidfile):
        return read_info(pidfile)
    info_path(pidfile).unlink(missing_ok=True)
    log = open(pidfile.with_suffix(".log"), "ab")  # noqa: SIM115 (handed to the child)
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "serve", "--root", str(root),
         "--bind", bind, "--port", str(port), "--pidfile", str(pidfile)],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    log.close()
    pidfile.write_text(f"{proc.pid}\n", encoding="utf-8")
    deadline = time.monotonic() + timeout
    while not info_path(pidfile).exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(pidfile)
            tail = pidfile.with_suffix(".log").read_text(encoding="utf-8", errors="replace")
            raise RuntimeError(f"mirror did not start:\n{tail[-2000:]}")
        time.sleep(0.1)
    return read_info(pidfile)


def stop(pidfile: Path, grace: float = 5.0) -> bool:
    """Stop the daemon of pidfile. Idempotent; returns True when a process was stopped."""
    pidfile = pidfile.resolve()
    pid = running_pid(pidfile)
    if pid:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while running_pid(pidfile) and time.monotonic() < deadline:
            time.sleep(0.1)
        if running_pid(pidfile):
            os.kill(pid, signal.SIGKILL)
        try:  # reap it when it is our own child (start() then stop() in one process)
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
    for path in (pidfile, info_path(pidfile)):
        path.unlink(missing_ok=True)
    return bool(pid)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def add(root: Path, version: str, files: Sequence[Path]) -> Path:
    """Copy release assets under root/version and (re)write sha256sum-amd64.txt for them."""
    target = root / version
    target.mkdir(parents=True, exist_ok=True)
    for src in files:
        shutil.copy2(src, target / src.name)
    sums = {}
    checksum = target / CHECKSUM_FILE
    if checksum.exists():
        for line in checksum.read_text(encoding="utf-8").splitlines():
            if line.strip():
                value, name = line.split(None, 1)
                sums[name.strip()] = value
    for src in files:
        sums[src.name] = sha256(target / src.name)
    checksum.write_text("".join(f"{v}  {n}\n" for n, v in sorted(sums.items())), encoding="utf-8")
    return target


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mirror", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("start", "serve"):
        p = sub.add_parser(name)
        p.add_argument("--root", required=True)
        p.add_argument("--pidfile", required=True)
        p.add_argument("--bind", default="127.0.0.1")
        p.add_argument("--port", type=int, default=0)
    p = sub.add_parser("stop")
    p.add_argument("--pidfile", required=True)
    p = sub.add_parser("url")
    p.add_argument("--pidfile", required=True)
    p.add_argument("--vm", action="store_true", help="the URL as seen from a VM")
    p = sub.add_parser("add")
    p.add_argument("--root", required=True)
    p.add_argument("--version", required=True)
    p.add_argument("files", nargs="+")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        serve(Path(args.root), args.bind, args.port, info_path(Path(args.pidfile).resolve()))
    elif args.command == "start":
        print(json.dumps(start(Path(args.root), Path(args.pidfile), args.bind, args.port)))
    elif args.command == "stop":
        stop(Path(args.pidfile))
    elif args.command == "url":
        pidfile = Path(args.pidfile).resolve()
        if not running_pid(pidfile):
            print(f"mirror: not running ({pidfile})", file=sys.stderr)
            return 1
        print(read_info(pidfile)["vm_url" if args.vm else "url"])
    elif args.command == "add":
        print(add(Path(args.root), args.version, [Path(f) for f in args.files]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
