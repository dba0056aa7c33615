"""``make bench``: reserve -> commit cycles through the real handler against DynamoDB Local.

Counts what survives a noisy machine — DynamoDB round trips and write units per metered event,
round trips per one-shot charge, the share of handler time spent outside DynamoDB calls — and
reports throughput and the cold import time of the metering handler module. The last line of
output is one JSON object.

Write units are given twice: as DynamoDB Local reports them (``ReturnConsumedCapacity``), and
as DynamoDB bills them (``wru_per_event_billed``: 1 per KB for a single write, 2 per KB per
item in a transaction, rounded up per item), from the sizes of the items actually written.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

CYCLES = int(os.environ.get("BENCH_CYCLES", "400"))
CHARGES = int(os.environ.get("BENCH_CHARGES", "200"))
IMPORT_RUNS = int(os.environ.get("BENCH_IMPORT_RUNS", "15"))
THREADS = int(os.environ.get("BENCH_THREADS", "8"))
RESETS = int(os.environ.get("BENCH_RESETS", "100"))


# -- DynamoDB item size, as DynamoDB counts it ---------------------------------------------------


def attr_size(value: dict[str, Any]) -> int:
    """Bytes of one attribute value by DynamoDB's sizing rules (close enough to bill by)."""
    ((kind, v),) = value.items()
    if kind == "S":
        return len(v.encode())
    if kind == "N":
        digits = len(v.lstrip("-").replace(".", "").lstrip("0")) or 1
        return math.ceil(digits / 2) + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + attr_size(x) + 1 for k, x in v.items())
    if kind == "L":
        return 3 + sum(attr_size(x) + 1 for x in v)
    return len(json.dumps(v))


def item_size(item: dict[str, Any]) -> int:
    return sum(len(k.encode()) + attr_size(v) for k, v in item.items())


def billed_units(size: int, transactional: bool) -> int:
    units = max(1, math.ceil(size / 1024))
    return 2 * units if transactional else units


@dataclass
class Meter:
    """Per-thread tally of DynamoDB calls, fed by botocore's event hooks."""

    calls: int = 0
    db_seconds: float = 0.0
    wru_reported: float = 0.0
    started: float = 0.0

    def reset(self) -> None:
        self.calls, self.db_seconds, self.wru_reported = 0, 0.0, 0.0


_local = threading.local()


def meter() -> Meter:
    if not hasattr(_local, "meter"):
        _local.meter = Meter()
    found: Meter = _local.meter
    return found


def _before(**_: Any) -> None:
    # The first event of a client call: the SDK's own work (validating, serialising, signing,
    # parsing) counts as time in the DynamoDB call, as it would in any handler.
    meter().started = time.perf_counter()


def _after(http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
    m = meter()
    m.calls += 1
    m.db_seconds += time.perf_counter() - m.started
    consumed = parsed.get("ConsumedCapacity")
    for entry in consumed if isinstance(consumed, list) else [consumed] if consumed else []:
        m.wru_reported += float(entry.get("CapacityUnits", 0) or 0)


def instrument(client: Any) -> None:
    client.meta.events.register("provide-client-params.dynamodb", _before)
    client.meta.events.register("after-call.dynamodb", _after)


# -- environment -----------------------------------------------------------------------------


@contextlib.contextmanager
def environment() -> Iterator[tuple[str, str]]:
    from devtools import ddb_local, table

    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        POWERTOOLS_METRICS_NAMESPACE="CreditMeter",
        POWERTOOLS_SERVICE_NAME="credit-meter",
        TABLE_NAME="credit-meter-bench",
        POWERTOOLS_LOG_LEVEL="WARNING",
    )
    with ddb_local.running() as endpoint:
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
        os.environ["AWS_ENDPOINT_URL_DYNAMODB_STREAMS"] = endpoint
        admin = ddb_local.client(endpoint)
        table.create_table(admin, os.environ["TABLE_NAME"])
        yield endpoint, os.environ["TABLE_NAME"]


RUNTIME_VENV = Path(".cache/runtime-venv")
LAYER_REQUIREMENTS = Path("layers/credit_meter/requirements.txt")


def runtime_python() -> Path:
    """A venv holding only what the Lambda gets: the layer's requirements (and boto3, which
    the Lambda runtime provides). The dev venv also holds SAM CLI and friends, whose many
    installed distributions slow pydantic's plugin discovery and would skew the figure."""
    python = RUNTIME_VENV / "bin" / "python"
    stamp = RUNTIME_VENV / ".requirements"
    wanted = LAYER_REQUIREMENTS.read_text() + "boto3\n"
    if not python.exists() or not stamp.exists() or stamp.read_text() != wanted:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(RUNTIME_VENV)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
                str(LAYER_REQUIREMENTS),
                "boto3",
            ],
            check=True,
            stdout=sys.stderr,
        )
        stamp.write_text(wanted)
    return python


def import_ms() -> tuple[float, float]:
    """Median and fastest wall time to import the metering handler module in a fresh
    interpreter (the median is the figure; the fastest shows how much is machine noise)."""
    python = runtime_python()
    code = (
        "import time; t = time.perf_counter(); import metering_api.app; "
        "print((time.perf_counter() - t) * 1000)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(["layers/credit_meter", "functions"])}
    subprocess.run([str(python), "-c", code], env=env, capture_output=True, check=True)  # .pyc
    runs = []
    for _ in range(IMPORT_RUNS):
        out = subprocess.run(
            [str(python), "-c", code], env=env, capture_output=True, text=True, check=True
        )
        runs.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(runs), min(runs)


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Send fd 1 (the handlers' EMF metric lines) to /dev/null for the duration."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def main() -> int:
    import_median, import_min = import_ms()
    with quiet_stdout():
        result = run()
    result["import_ms"] = round(import_median, 1)
    result["import_ms_min"] = round(import_min, 1)
    print(json.dumps(result))
    return 0 if result["ledger_entries"] == result["ledger_seq"] else 1


def run() -> dict[str, Any]:
    with environment() as (endpoint, table_name):
        from credit_meter import store
        from devtools.apigw import FakeContext, http_event
        from metering_api.app import handler

        store.reset_client()
        instrument(store.dynamodb_client())
        ctx = FakeContext()

        def call(
            method: str, path: str, body: dict[str, Any] | None = None, key: str | None = None
        ) -> tuple[dict[str, Any], float]:
            headers = {"idempotency-key": key} if key else {}
            event = http_event(method, path, body, headers)
            start = time.perf_counter()
            response = handler(event, ctx)
            elapsed = time.perf_counter() - start
            if response["statusCode"] >= 300:
                raise RuntimeError(f"{method} {path}: {response['statusCode']} {response['body']}")
            return json.loads(response["body"]), elapsed

        wallet = "/v1/wallets/bench"
        call("PUT", wallet, {"plan": "enterprise", "allowance": "1000000000"})
        for _i in range(20):  # warm-up: the first calls build models and connections
            r, _ = call("POST", f"{wallet}/reservations", {"feature": "chat", "credits": "2"})
            call("POST", f"{wallet}/reservations/{r['reservation_id']}/commit", {"credits": "1"})

        def cycles(n: int, keyed: bool, tag: str, member: str = "u1") -> dict[str, float]:
            m = meter()
            m.reset()
            handler_seconds = 0.0
            wall = time.perf_counter()
            for i in range(n):
                body = {
                    "feature": "chat",
                    "member_id": member,
                    "usage": [{"meter": "input_tokens", "quantity": 1200, "model": "gpt-4o"}],
                }
                r, t1 = call(
                    "POST", f"{wallet}/reservations", body, f"{tag}-{i}" if keyed else None
                )
                _, t2 = call(
                    "POST",
                    f"{wallet}/reservations/{r['reservation_id']}/commit",
                    {"credits": "0.1"},
                )
                handler_seconds += t1 + t2
            wall = time.perf_counter() - wall
            return {
                "round_trips": m.calls / n,
                "wru_reported": m.wru_reported / n,
                "non_db_share": (handler_seconds - m.db_seconds) / handler_seconds,
                "events_per_s": n / wall,
                "handler_ms": handler_seconds / n * 1000,
            }

        plain = cycles(CYCLES, keyed=False, tag="p")
        keyed = cycles(CYCLES // 2, keyed=True, tag="k")

        # Billed WRU need the real item sizes: the wallet item as it stands, the records.
        admin = store.dynamodb_client()
        wallet_item = admin.get_item(
            TableName=table_name, Key={"pk": {"S": "W#bench"}, "sk": {"S": "W"}}
        )["Item"]
        wallet_size = item_size(wallet_item)

        # A spending limit on the wallet and a budget for the member: the same writes, with
        # the limit and the budget tested in their conditions.
        call(
            "PUT",
            f"{wallet}/limits",
            {"alert_threshold": "100000000", "allowed_limit": "900000000"},
        )
        call("PUT", f"{wallet}/members/u2/budget", {"budget": "100000000"})
        budgeted = cycles(CYCLES // 2, keyed=False, tag="b", member="u2")
        budgeted_size = item_size(
            admin.get_item(TableName=table_name, Key={"pk": {"S": "W#bench"}, "sk": {"S": "W"}})[
                "Item"
            ]
        )
        record_size = 200  # a reservation record: ~120-200 bytes (< 1 KB, 1 unit either way)
        per_event_plain = (
            billed_units(wallet_size, False)  # reserve: one UpdateItem
            + billed_units(wallet_size, True)
            + billed_units(record_size, True)  # commit tx
        )
        per_event_keyed = (
            billed_units(wallet_size, True)
            + billed_units(record_size, True)  # reserve tx
            + billed_units(wallet_size, True)
            + billed_units(record_size, True)  # commit tx
        )
        projection = 1  # one ledger entry (< 1 KB) per commit, written by the projector

        m = meter()
        m.reset()
        charge_handler = 0.0
        for _i in range(CHARGES):
            _, t = call("POST", f"{wallet}/charges", {"feature": "search", "credits": "0.01"})
            charge_handler += t
        charge_round_trips = m.calls / CHARGES
        charge_non_db = (charge_handler - m.db_seconds) / charge_handler

        # Throughput with several callers at once on one wallet (the hot item). The handler
        # serves one invocation per process (as Lambda does), so the threads call the service
        # the handler calls.
        from credit_meter.catalog import UsageLine
        from credit_meter.service import Cost, Metering, Request

        usage = (UsageLine("input_tokens", Decimal(1200), "gpt-4o"),)

        def one(i: int) -> None:
            service = Metering()
            held = service.reserve("bench", Cost(usage=usage), Request(f"h{i}"), "chat")
            service.commit("bench", held.reservation_id, Cost(Decimal("0.1")), Request(f"c{i}"))

        n_conc = CYCLES // 2
        start = time.perf_counter()
        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(one, range(n_conc)))
        conc_eps = n_conc / (time.perf_counter() - start)

        # Drain the ledger projection and check it kept up exactly.
        from devtools.stream_pump import StreamPump
        from ledger_projector.app import handler as project

        stream_arn = admin.describe_table(TableName=table_name)["Table"]["LatestStreamArn"]
        pump = StreamPump(endpoint, stream_arn, project)
        pump.drain()
        seq = int(
            admin.get_item(TableName=table_name, Key={"pk": {"S": "W#bench"}, "sk": {"S": "W"}})[
                "Item"
            ]["seq"]["N"]
        )
        entries = admin.query(
            TableName=table_name,
            Select="COUNT",
            KeyConditionExpression="pk = :pk AND begins_with(sk, :t)",
            ExpressionAttributeValues={":pk": {"S": "W#bench"}, ":t": {"S": "T#"}},
        )["Count"]

        resets = reset_cost(table_name)
        topups = topup_cost()

    result = {
        "round_trips_per_event": round(plain["round_trips"], 3),
        "wru_per_event": round(plain["wru_reported"], 3),
        "wru_per_event_billed": per_event_plain + projection,
        "wru_per_event_billed_sync": per_event_plain,
        "wru_per_event_billed_with_idempotency_key": per_event_keyed + projection,
        "round_trips_per_event_with_idempotency_key": round(keyed["round_trips"], 3),
        "charge_round_trips": round(charge_round_trips, 3),
        "round_trips_per_event_limit_and_member_budget": round(budgeted["round_trips"], 3),
        "non_db_share": round(plain["non_db_share"], 4),
        "charge_non_db_share": round(charge_non_db, 4),
        "events_per_s": round(plain["events_per_s"], 1),
        f"events_per_s_{THREADS}_threads": round(conc_eps, 1),
        "handler_ms_per_event": round(plain["handler_ms"], 2),
        "wallet_item_bytes": wallet_size,
        "wallet_item_bytes_limit_and_member_budget": budgeted_size,
        "ledger_entries": entries,
        "ledger_seq": seq,
        "cycles": CYCLES,
        **resets,
        **topups,
    }
    if entries != seq:
        print(f"ledger projection incomplete: {entries} entries for seq {seq}", file=sys.stderr)
    return result


def reset_cost(table_name: str) -> dict[str, Any]:
    """Monthly resets through the real worker handler (SQS batches of ten): DynamoDB round
    trips per wallet reset and per dispatch, and the write units a reset costs."""
    from monthly_reset.app import handler as reset_worker

    from credit_meter import clock, store
    from credit_meter.billing import Billing
    from credit_meter.common import Request
    from devtools.lambda_context import FakeLambdaContext

    service = Billing()
    wallets = [f"bench-reset-{i}" for i in range(RESETS)]
    for i, wallet_id in enumerate(wallets):
        service.put_wallet(wallet_id, "pro")
        service.grant(wallet_id, Decimal(10), "promo", Request(f"r{i}"))
    period_end = service.get_wallet(wallets[0]).period_end
    clock.set_clock(lambda: period_end + 60.0)
    try:
        m = meter()
        m.reset()
        due = list(service.due_wallets())
        dispatch_round_trips = m.calls
        m.reset()
        ctx = FakeLambdaContext(function_name="credit-meter-monthly-reset")
        start = time.perf_counter()
        for first in range(0, len(wallets), 10):
            batch = [
                {"messageId": str(n), "body": json.dumps({"wallet_id": w})}
                for n, w in enumerate(wallets[first : first + 10])
            ]
            failures = reset_worker({"Records": batch}, ctx)["batchItemFailures"]
            if failures:
                raise RuntimeError(f"reset failures: {failures}")
        elapsed = time.perf_counter() - start
        after = store.dynamodb_client().get_item(
            TableName=table_name, Key={"pk": {"S": f"W#{wallets[0]}"}, "sk": {"S": "W"}}
        )["Item"]
    finally:
        clock.set_clock(None)
    if sorted(due) != sorted(wallets):
        print(f"due index listed {len(due)} of {len(wallets)} wallets", file=sys.stderr)
    return {
        "reset_round_trips_per_wallet": round(m.calls / len(wallets), 3),
        "reset_wru_reported_per_wallet": round(m.wru_reported / len(wallets), 3),
        # one UpdateItem of the wallet + the due index entry moved (a delete and a put)
        "reset_wru_billed_per_wallet": billed_units(item_size(after), False) + 2,
        "reset_ms_per_wallet": round(elapsed / len(wallets) * 1000, 2),
        "reset_dispatch_round_trips": dispatch_round_trips,
        "reset_wallets": len(wallets),
    }


TOPUPS = 50


def topup_cost() -> dict[str, Any]:
    """Stripe webhook deliveries through the real handler, signed as Stripe signs them:
    DynamoDB round trips for a payment's first event, for a duplicate (Stripe retries, or
    ``payment_intent.succeeded`` after the session) and for a refund, and the time each takes."""
    import os

    from devtools import stripe_events as se
    from devtools.apigw import http_event
    from devtools.lambda_context import FakeLambdaContext

    os.environ.setdefault("STRIPE_WEBHOOK_SECRET", "whsec_bench_fake")
    secret = os.environ["STRIPE_WEBHOOK_SECRET"]
    from stripe_webhook.app import handler as webhook

    from credit_meter.billing import Billing

    Billing().put_wallet("bench-topups", "free")
    ctx = FakeLambdaContext(function_name="credit-meter-stripe-webhook")

    def deliver(kind: str, obj: dict[str, Any]) -> None:
        body = se.encode(se.event(kind, obj))
        headers = {"content-type": "application/json", "stripe-signature": se.sign(body, secret)}
        with quiet_stdout():
            response = webhook(http_event("POST", "/v1/webhooks/stripe", body, headers), ctx)
        if response["statusCode"] != 200:
            raise RuntimeError(f"webhook answered {response}")

    def measure(events: list[tuple[str, dict[str, Any]]]) -> tuple[float, float, float]:
        m = meter()
        m.reset()
        start = time.perf_counter()
        for kind, obj in events:
            deliver(kind, obj)
        elapsed = time.perf_counter() - start
        n = len(events)
        return m.calls / n, m.wru_reported / n, elapsed / n * 1000

    sessions = []
    for i in range(TOPUPS):
        pi = f"pi_bench{i:06d}"
        sessions.append(
            se.checkout_session(
                session_id=f"cs_test_bench{i:06d}", payment_intent=pi, wallet_id="bench-topups"
            )
        )
    first = measure([("checkout.session.completed", s) for s in sessions])
    again = measure([("checkout.session.completed", s) for s in sessions])
    refunds = measure(
        [
            ("charge.refunded", se.charge(payment_intent=s["payment_intent"], amount_refunded=250))
            for s in sessions
        ]
    )
    return {
        "topup_round_trips_first": round(first[0], 3),
        "topup_wru_reported_first": round(first[1], 3),
        "topup_ms_first": round(first[2], 2),
        "topup_round_trips_duplicate": round(again[0], 3),
        "topup_wru_reported_duplicate": round(again[1], 3),
        "topup_round_trips_refund": round(refunds[0], 3),
        "topup_ms_refund": round(refunds[2], 2),
        "topup_payments": TOPUPS,
    }


if __name__ == "__main__":
    sys.exit(main())
