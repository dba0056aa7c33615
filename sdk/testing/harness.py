"""A local Credit Meter API for the SDKs' tests, with a fault-injecting proxy in front.

    .venv/bin/python sdk/testing/harness.py

Starts ``devtools.local_server`` on free ports (API and Stripe stand-in), waits for its
"listening" line, starts the proxy, mints development tokens and prints one JSON line:
``{"base_url", "proxy_url", "token", "admin_token", "viewer_token"}`` (organisation
``acme``; ``token`` has the scopes ``credits:admin credits:meter``). It runs until its
standard input closes or it gets SIGTERM/SIGINT, then stops the server. Needs the
repository's .venv (the server's dependencies); the SDK under test may run in any other
environment.

The proxy forwards everything to the API. ``POST /__proxy/drop`` with ``{"count": N}`` makes
it drop the answer to the next N POSTs *after* forwarding them (the server has acted, the
client sees the connection close): a retry must not act twice. ``POST /__proxy/fail`` with
``{"count": N, "status": S}`` answers the next N requests with S itself (Retry-After: 0),
never forwarding them. ``GET /__proxy/stats`` counts the POSTs forwarded per path.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
STARTUP_DEADLINE_SECONDS = 180  # DynamoDB Local's JVM is slow to start on a busy machine
LISTENING = re.compile(r"listening on (http://\S+)")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(alerts_file: str) -> tuple[subprocess.Popen[str], str]:
    env = {
        **os.environ,
        "PORT": str(free_port()),
        "LOCAL_STRIPE_PORT": str(free_port()),
        "ALERTS_FILE": alerts_file,
        "PYTHONPATH": os.pathsep.join(
            str(ROOT / p) for p in ("layers/credit_meter", "functions", ".")
        ),
        "PYTHONUNBUFFERED": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "devtools.local_server"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        # Reads the log to its end, so that a full pipe never blocks the server.
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    try:
        return _wait_listening(proc, lines)
    except BaseException:  # SIGTERM while starting, too: never leave the server behind
        stop(proc)
        raise


def _wait_listening(
    proc: subprocess.Popen[str], lines: queue.Queue[str | None]
) -> tuple[subprocess.Popen[str], str]:
    deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
    seen: list[str] = []
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        found = LISTENING.search(line)
        if found:
            threading.Thread(target=_drain, args=(lines,), daemon=True).start()
            return proc, found.group(1)
    stop(proc)
    raise RuntimeError("the local server did not start:\n" + "".join(seen[-40:]))


def _drain(lines: queue.Queue[str | None]) -> None:
    while lines.get() is not None:
        pass


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def mint(org: str, *, scope: str | None = None, role: str | None = None) -> str:
    args = [sys.executable, "-m", "devtools.dev_tokens", "--org", org]
    args += ["--scope", scope] if scope else ["--role", role or "viewer"]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            str(ROOT / p) for p in ("layers/credit_meter", "functions", ".")
        ),
    }
    out = subprocess.run(args, cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return out.stdout.strip()


class DropProxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.upstream = urlsplit(upstream)
        self.lock = threading.Lock()
        self.drops = 0
        self.failures: list[int] = []
        self.posts: Counter[str] = Counter()


class _ProxyHandler(BaseHTTPRequestHandler):
    server: DropProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _control(self, body: bytes) -> None:
        request = json.loads(body or b"{}")
        if self.command == "POST" and self.path == "/__proxy/drop":
            with self.server.lock:
                self.server.drops = int(request.get("count", 1))
            payload: Any = {"drops": self.server.drops}
        elif self.command == "POST" and self.path == "/__proxy/fail":
            with self.server.lock:
                self.server.failures = [int(request.get("status", 503))] * request.get("count", 1)
            payload = {"failures": self.server.failures}
        else:
            with self.server.lock:
                payload = dict(self.server.posts)
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/__proxy/"):
            self._control(body)
            return
        with self.server.lock:
            failure = self.server.failures.pop(0) if self.server.failures else None
        if failure is not None:  # answered here: the API never sees the request
            self._send_failure(failure)
            return
        up = self.server.upstream
        conn = http.client.HTTPConnection(up.hostname or "127.0.0.1", up.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        conn.request(self.command, self.path, body=body or None, headers=headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        drop = False
        if self.command == "POST":
            with self.server.lock:
                self.server.posts[urlsplit(self.path).path] += 1
                if self.server.drops > 0:
                    self.server.drops -= 1
                    drop = True
        if drop:  # the server acted; the client never hears of it
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in HOP_BY_HOP:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_failure(self, status: int) -> None:
        data = json.dumps(
            {"type": "/problems/contention", "title": "Busy", "status": status, "detail": "x"}
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/problem+json")
        self.send_header("Retry-After", "0")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _forward


def _exit_on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    signal.signal(signal.SIGTERM, _exit_on_signal)
    with tempfile.TemporaryDirectory(prefix="cm-sdk-test-") as tmp:
        proc, base_url = start_server(str(Path(tmp) / "alerts.jsonl"))
        proxy = DropProxy(base_url)
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        stopping = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopping.set())
        signal.signal(signal.SIGINT, lambda *_: stopping.set())
        try:
            info = {
                "base_url": base_url,
                "proxy_url": f"http://127.0.0.1:{proxy.server_address[1]}",
                "token": mint("acme", scope="credits:admin credits:meter"),
                "admin_token": mint("acme", role="admin"),
                "viewer_token": mint("acme", role="viewer"),
            }
            print(json.dumps(info), flush=True)
            # Until the test run closes our standard input (or signals us).
            threading.Thread(target=lambda: (sys.stdin.read(), stopping.set()), daemon=True).start()
            while not stopping.wait(0.5):
                if proc.poll() is not None:
                    print("the local server stopped", file=sys.stderr)
                    return 1
        finally:
            proxy.shutdown()
            proxy.server_close()
            stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
