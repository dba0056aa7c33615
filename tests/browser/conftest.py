"""Browser tests of the web components (ui/): the local server in a subprocess on free ports,
serving the API and the built bundle under /ui/, driven by Playwright in Debian's headless
Chromium (never a downloaded browser).

Skipped when Playwright, Chromium or the built bundle is missing; ``make ui-test`` provides all
three.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devtools import dev_tokens, stripe_webhook
from devtools.local_server import LOCAL_WEBHOOK_SECRET

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "ui" / "dist" / "credit-meter.js"
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# DynamoDB Local and the worker processes take a while to start on a busy machine.
START_DEADLINE_SECONDS = 180

sync_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (make ui-test installs it)", allow_module_level=True)
if not BUNDLE.exists():
    pytest.skip("the bundle is not built (make ui)", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """The running local server: its ports and a small JSON client for setting up data."""

    port: int
    stripe_port: int
    key_file: Path
    log: list[str] = field(default_factory=list)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def token(self, org: str, *, role: str = "", scope: str = "", sub: str = "", **kw: Any) -> str:
        key = dev_tokens.load_key(self.key_file)
        subject = sub or (f"{role}@{org}" if role else f"svc@{org}")
        return dev_tokens.mint(subject, org, role or None, scope or None, key=key, **kw)

    def call(self, method: str, path: str, token: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.origin}{path}", data=data, method=method)
        request.add_header("authorization", f"Bearer {token}")
        if data is not None:
            request.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            raise AssertionError(f"{method} {path}: {error.code} {error.read()!r}") from error
        return json.loads(raw) if raw else None

    def pay(self, checkout_session_id: str) -> None:
        """The buyer pays: the Stripe stand-in completes the session and its signed webhooks
        are posted, as ``make webhook ARGS="pay …"`` does."""
        status = stripe_webhook.main(
            [
                "pay",
                checkout_session_id,
                f"--url={self.origin}/v1/webhooks/stripe",
                f"--api-base=http://127.0.0.1:{self.stripe_port}",
                f"--secret={LOCAL_WEBHOOK_SECRET}",
            ]
        )
        assert status == 0, f"the webhook for {checkout_session_id} was refused"


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    state = tmp_path_factory.mktemp("ui-server")
    server = Server(free_port(), free_port(), state / "dev-jwt-key.pem")
    env = {
        **os.environ,
        "PORT": str(server.port),
        "LOCAL_STRIPE_PORT": str(server.stripe_port),
        "LOCAL_WORKERS": "2",
        "LOCAL_SWEEP_SECONDS": "2",  # expired holds show up within the test
        "LOCAL_RESET_SECONDS": "0",
        "DEV_JWT_KEY_FILE": str(server.key_file),
        "ALERTS_FILE": str(state / "alerts.jsonl"),
        "BYOK_LOCAL_KEY_FILE": str(state / "byok.key"),
        "PYTHONPATH": os.pathsep.join(["layers/credit_meter", "functions", "."]),
        "PYTHONUNBUFFERED": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.local_server"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    listening = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            server.log.append(line)
            if "listening on" in line:
                listening.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + START_DEADLINE_SECONDS
        while not listening.wait(0.5):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the local server did not start:\n" + "".join(server.log))
        yield server
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()
