"""``make smoke`` against a local server started here (``python -m devtools.local_server`` in its
own process on free ports, as ``make run`` starts it, with its own DynamoDB Local): it passes,
says so in one line, fails with 1 when refused, and releases a hold a failed step left open."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from devtools import ddb_local, dev_tokens, smoke

ROOT = Path(__file__).resolve().parents[2]
PYTHONPATH = os.pathsep.join(str(ROOT / p) for p in ("layers/credit_meter", "functions", "."))
START_SECONDS = 120  # a JVM and every function's imports, on a busy machine
RUN_SECONDS = 120


@dataclass(frozen=True)
class LocalApi:
    url: str
    key_file: Path  # the development key the server verifies tokens with


def _wait_until_listening(proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if "listening on" in text:
            return
        if proc.poll() is not None:
            pytest.fail(f"the local server exited ({proc.returncode}):\n{text[-3000:]}")
        time.sleep(0.1)  # polling the server's log, up to the deadline
    pytest.fail(f"the local server did not start in {START_SECONDS} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # the server stops its DynamoDB Local itself
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: the server and its children
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def local_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalApi]:
    if not ddb_local.java_available():
        pytest.skip("Java is not available; the local server needs DynamoDB Local")
    work = tmp_path_factory.mktemp("smoke")
    port, stripe_port = ddb_local.free_port(), ddb_local.free_port()
    env = {
        **os.environ,
        "PYTHONPATH": PYTHONPATH,
        "LOCAL_STRIPE_PORT": str(stripe_port),
        # The server's files in this test's directory, never the developer's .cache.
        "DEV_JWT_KEY_FILE": str(work / "dev-jwt-key.pem"),
        "ALERTS_FILE": str(work / "alerts.jsonl"),
        "BYOK_LOCAL_KEY_FILE": str(work / "byok-local.key"),
        "LOCAL_SWEEP_SECONDS": "0",
        "LOCAL_RESET_SECONDS": "0",
        "LOCAL_WORKERS": "1",
    }
    log = work / "server.log"
    with log.open("wb") as out:
        server = ["devtools.local_server", "--backend", "ddb-local", "--port", str(port)]
        proc = subprocess.Popen(
            [sys.executable, "-m", *server],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_listening(proc, log)
        yield LocalApi(f"http://127.0.0.1:{port}", work / "dev-jwt-key.pem")
    finally:
        _stop(proc)


def _wallet(api: LocalApi, output: str) -> dict[str, object]:
    """The wallet a run names in its summary, read through the API with an admin token."""
    match = re.search(r"wallet (smoke-[0-9TZ]+-[0-9a-f]+)", output)
    assert match, output
    token = dev_tokens.mint(
        "admin@smoke", "smoke", role="admin", key=dev_tokens.load_key(api.key_file)
    )
    request = urllib.request.Request(
        f"{api.url}/v1/wallets/{match.group(1)}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=15) as response:
        wallet: dict[str, object] = json.load(response)
    return wallet


def test_make_smoke_passes_and_says_so_in_one_line(local_api: LocalApi) -> None:
    env = {**os.environ, "DEV_JWT_KEY_FILE": str(local_api.key_file)}
    env.pop("TOKEN", None)
    env.pop("METER_TOKEN", None)
    # -o: the venv these tests run in is the one to use; make must not reinstall it now.
    done = subprocess.run(
        ["make", "-s", "-o", ".venv/.requirements.stamp", "smoke", f"API={local_api.url}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_SECONDS,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = done.stdout.strip().splitlines()
    assert len(summary) == 1 and summary[0].startswith("smoke OK"), done.stdout
    assert "balance 500 -> 498.3" in summary[0] and "ledger agrees" in summary[0]
    assert "ledger: 4 entries summing to 498.3" in done.stderr
    wallet = _wallet(local_api, summary[0])
    assert (wallet["balance"], wallet["held"], wallet["used"]) == ("498.3", "0", "1.7")


def test_a_refused_token_fails_with_1(local_api: LocalApi) -> None:
    env = {**os.environ, "TOKEN": "not-a-token", "PYTHONPATH": PYTHONPATH}
    done = subprocess.run(
        [sys.executable, "-m", "devtools.smoke", "--api", local_api.url, "--quiet"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_SECONDS,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    [line] = done.stdout.strip().splitlines()
    assert line.startswith("smoke FAILED") and "401" in line


def test_a_failed_step_leaves_no_hold_open(
    local_api: LocalApi,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DEV_JWT_KEY_FILE", str(local_api.key_file))
    monkeypatch.delenv("TOKEN", raising=False)
    monkeypatch.delenv("METER_TOKEN", raising=False)

    def commit_fails(
        self: smoke.Smoke, reservation_id: str, action: str, body: object = None
    ) -> NoReturn:
        raise smoke.SmokeFailure(f"{action} of {reservation_id} refused by the test")

    monkeypatch.setattr(smoke.Smoke, "end", commit_fails)
    assert smoke.main(["--api", local_api.url, "--quiet"]) == 1
    [line] = capsys.readouterr().out.strip().splitlines()
    assert "commit of rsv_" in line and "left open" not in line
    wallet = _wallet(local_api, line)
    assert (wallet["balance"], wallet["held"], wallet["available"]) == ("500", "0", "500")
