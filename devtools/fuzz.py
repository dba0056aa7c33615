"""Fuzz the HTTP API against its contract, docs/openapi.yaml: ``python -m devtools.fuzz``
(``make fuzz``).

Starts the local stack (:func:`devtools.local_server.local_stack`: the real handlers behind the
API Gateway emulator and its JWT authorizer) on a free port of 127.0.0.1, with its own Stripe
stand-in port, alerts file and BYOK key so that it never meets a ``make run`` going beside it;
makes a few wallets so that the generated requests reach more than 404; and runs Schemathesis
on every operation of the document with a development token of an organisation's ``admin``
that also holds the ``credits:admin`` and ``credits:meter`` scopes, so that no operation is
refused for the caller alone. The checks are the document's promises:

* ``not_a_server_error``: no input is a 5xx;
* ``status_code_conformance``, ``content_type_conformance``, ``response_schema_conformance``:
  every answer is one the operation documents, with its media type and schema;
* ``positive_data_acceptance``: a request the schemas allow is not refused as invalid;
* ``negative_data_rejection``: a request they forbid is refused with a 4xx.

``devtools/schemathesis.toml`` says which statuses a schema-valid request may get besides
2xx (a business answer: 402, 404 for a wallet that does not exist, 409), and why.

Bounded and seeded: ``--max-examples`` per operation and ``--seed`` (both fixed by default, so
a run is repeatable), ``--max-time`` for the whole run. Exit status: Schemathesis's (0: no
failure). ``--quick`` is the short pass the tests run (``tests/fuzz/test_fuzz.py``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devtools import dev_tokens, local_server

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = REPO_ROOT / "docs" / "openapi.yaml"
CONFIG = Path(__file__).resolve().parent / "schemathesis.toml"
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "positive_data_acceptance",
    "negative_data_rejection",
)
ORG = "fuzz-org"
# Wallets the generated requests may name (devtools/schemathesis.toml names them: keep both in
# step; it puts FUZZ_WALLET in most wallet paths and OTHER_WALLET in most transfers and
# referrals): one with credits to spend, one to transfer to.
FUZZ_WALLET = "fuzz-w1"
OTHER_WALLET = "fuzz-w2"
DEFAULT_SEED = 20261206
DEFAULT_EXAMPLES = 25
DEFAULT_MAX_TIME = 300  # seconds
QUICK_EXAMPLES = 3
QUICK_MAX_TIME = 45


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def token() -> str:
    """An organisation admin's development token that also holds both platform scopes."""
    return dev_tokens.mint(
        f"admin@{ORG}", ORG, "admin", ["credits:admin", "credits:meter"], ttl_seconds=3600
    )


@contextmanager
def running_api(backend: str = "auto") -> Iterator[str]:
    """The local stack serving on a free port; yields its base URL."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="credit-meter-fuzz-") as scratch:
        saved = dict(os.environ)
        os.environ.update(
            {
                "LOCAL_STRIPE_PORT": str(free_port()),
                "ALERTS_FILE": str(Path(scratch) / "alerts.jsonl"),
                "BYOK_LOCAL_KEY_FILE": str(Path(scratch) / "byok-local.key"),
                # Thousands of requests: the functions log errors only (a 5xx still shows).
                "LOG_LEVEL": "ERROR",
                "POWERTOOLS_LOG_LEVEL": "ERROR",
            }
        )
        try:
            with local_server.local_stack(
                backend=backend,
                table_name="credit-meter-fuzz",
                port=port,
                sweep_seconds=0,
                reset_seconds=0,
            ) as (server, _store):
                thread = threading.Thread(target=server.serve_forever, daemon=True)
                thread.start()
                try:
                    yield f"http://127.0.0.1:{port}"
                finally:
                    server.shutdown()
                    thread.join(10)
        finally:
            os.environ.clear()
            os.environ.update(saved)


def seed_wallets(base_url: str, bearer: str) -> None:
    """The wallets the config names, with credits enough that most charges go through."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    headers = {"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"}
    for method, path, body in (
        ("PUT", f"/v1/wallets/{FUZZ_WALLET}", {"plan": "pro"}),
        ("PUT", f"/v1/wallets/{OTHER_WALLET}", {"plan": "free"}),
        ("POST", f"/v1/wallets/{FUZZ_WALLET}/grants", {"credits": "1000000", "source": "promo"}),
    ):
        request = urllib.request.Request(
            base_url + path, json.dumps(body).encode(), headers, method=method
        )
        with opener.open(request, timeout=30) as response:
            if response.status >= 300:
                raise SystemExit(f"error: {method} {path} answered {response.status}")


def schemathesis_command(
    base_url: str,
    bearer: str,
    *,
    examples: int,
    seed: int,
    max_time: int,
    report: Path,
) -> list[str]:
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(CONFIG),
        "run",
        str(DOCUMENT),
        "--url",
        base_url,
        "--header",
        f"Authorization: Bearer {bearer}",
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        str(examples),
        "--seed",
        str(seed),
        "--generation-database",
        "none",
        "--workers",
        "1",
        # The machine may be busy; a slow answer is not what this looks for.
        "--request-timeout",
        "30",
        "--no-color",
        "--report",
        "junit",
        "--report-junit-path",
        str(report),
        "--max-time",
        str(max_time),
    ]
    return command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.fuzz",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--max-examples", type=int, default=DEFAULT_EXAMPLES)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--max-time", type=int, default=None, help="seconds for the whole run")
    parser.add_argument("--quick", action="store_true", help="a short pass (the tests' one)")
    parser.add_argument("--backend", choices=("auto", "ddb-local", "moto"), default="moto")
    parser.add_argument("--report", type=Path, default=REPO_ROOT / ".cache" / "fuzz" / "junit.xml")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    for noisy in ("werkzeug", "devtools.local_server", "botocore"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    examples = QUICK_EXAMPLES if args.quick else args.max_examples
    max_time = args.max_time or (QUICK_MAX_TIME if args.quick else DEFAULT_MAX_TIME)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    with running_api(args.backend) as base_url:
        bearer = token()
        seed_wallets(base_url, bearer)
        command = schemathesis_command(
            base_url,
            bearer,
            examples=examples,
            seed=args.seed,
            max_time=max_time,
            report=args.report,
        )
        # Run where its cache (.schemathesis/) is thrown away: every run starts afresh.
        with tempfile.TemporaryDirectory(prefix="credit-meter-fuzz-run-") as workdir:
            return subprocess.run(command, check=False, cwd=workdir).returncode


if __name__ == "__main__":
    sys.exit(main())
