"""A tiny fault-injecting HTTP proxy in front of the Argo CD API stand-in (tests only).

Every request is logged with its arrival time (``time.monotonic()``) so the tests can count the
attempts of a client and measure the gaps between them. A rule answers the first ``count``
matching requests itself: ``status`` (an HTTP error with a plain-text body) or ``delay`` (sleep
that many seconds before forwarding: a client with a shorter timeout sees a timeout). Other
requests are forwarded unchanged to the stand-in.
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional
from urllib.parse import urlsplit


@dataclass
class Rule:
    method: str
    path_prefix: str
    count: int
    status: int = 0
    delay: float = 0.0
    body: str = "upstream unavailable"


@dataclass
class FaultProxy:
    """``with FaultProxy(upstream_url) as proxy: proxy.url``; ``proxy.add(Rule(...))``."""

    upstream: str
    rules: List[Rule] = field(default_factory=list)
    log: List[Dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, fmt: str, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                proxy.handle(self)

            do_POST = do_PUT = do_DELETE = do_GET

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.httpd.server_address[1]

    def add(self, rule: Rule) -> None:
        with self.lock:
            self.rules.append(rule)

    def take(self, method: str, path: str) -> Optional[Rule]:
        with self.lock:
            for rule in self.rules:
                if rule.count > 0 and rule.method == method and path.startswith(rule.path_prefix):
                    rule.count -= 1
                    return rule
        return None

    def attempts(self, method: str, path_prefix: str) -> List[float]:
        """Arrival times of the requests matching ``method`` and ``path_prefix``."""
        with self.lock:
            return [e["time"] for e in self.log if e["method"] == method and e["path"].startswith(path_prefix)]

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        path = urlsplit(handler.path).path
        with self.lock:
            self.log.append({"time": time.monotonic(), "method": handler.command, "path": path})
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        rule = self.take(handler.command, path)
        if rule is not None and rule.status:
            return self.reply(handler, rule.status, {"Content-Type": "text/plain"}, rule.body.encode())
        if rule is not None and rule.delay:
            time.sleep(rule.delay)
        target = urlsplit(self.upstream)
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("host", "connection")}
        try:
            conn.request(handler.command, handler.path, body=body, headers=headers)
            answer = conn.getresponse()
            data = answer.read()
            self.reply(handler, answer.status, {"Content-Type": answer.getheader("Content-Type") or "text/plain",
                                                "Date": answer.getheader("Date") or ""}, data)
        except (BrokenPipeError, ConnectionResetError):
            return
        finally:
            conn.close()

    @staticmethod
    def reply(handler: BaseHTTPRequestHandler, status: int, headers: Dict[str, str], data: bytes) -> None:
        try:
            handler.send_response(status)
            for key, value in headers.items():
                if value:
                    handler.send_header(key, value)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def __enter__(self) -> "FaultProxy":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
