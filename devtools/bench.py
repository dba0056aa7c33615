"""``make bench``: reserve -> commit cycles through the real handler against DynamoDB Local.

Counts what survives a noisy machine — DynamoDB round trips and write units per metered event,
round trips per one-shot charge, the share of handler time spent outside DynamoDB calls — and
reports throughput and the cold import time of the metering handler module. The last line of
output is one JSON object.

The report path (``report_*``): a wallet's usage summary and its 30-day and 24-month series
through the handler, on wallets seeded with 1,000 and 100,000 ledger entries over 60 days
(``report_seeding`` says how): DynamoDB round trips, items the responses returned, read units
and median latency, to show what a report reads does not grow with the ledger.

Write units are given twice: as DynamoDB Local reports them (``ReturnConsumedCapacity``), and
as DynamoDB bills them (``wru_per_event_billed``: 1 per KB for a single write, 2 per KB per
item in a transaction, rounded up per item), from the sizes of the items actually written.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

CYCLES = int(os.environ.get("BENCH_CYCLES", "400"))
CHARGES = int(os.environ.get("BENCH_CHARGES", "200"))
IMPORT_RUNS = int(os.environ.get("BENCH_IMPORT_RUNS", "15"))
THREADS = int(os.environ.get("BENCH_THREADS", "8"))
RESETS = int(os.environ.get("BENCH_RESETS", "100"))
# Ledger entries of the report wallets ("" leaves the report path out).
REPORT_ENTRIES = tuple(
    int(n) for n in os.environ.get("BENCH_REPORT_ENTRIES", "1000,100000").split(",") if n.strip()
)
REPORT_RUNS = int(os.environ.get("BENCH_REPORT_RUNS", "15"))
# Who the benchmark calls the API as: an owner of its organisation whose token also carries
# both service scopes (may use every route), as API Gateway's authorizer passes the claims.
BENCH_ORG = "bench-org"
BENCH_CALLER = {
    "sub": "bench-owner",
    "org_id": BENCH_ORG,
    "role": "owner",
    "scope": "credits:meter credits:admin",
}


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
    wru_reported: float = 0.0  # every call's ConsumedCapacity (read units for reads)
    items_read: int = 0  # items the responses returned (GetItem, Query, BatchGetItem)
    started: float = 0.0

    def reset(self) -> None:
        self.calls, self.db_seconds, self.wru_reported = 0, 0.0, 0.0
        self.items_read = 0


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
    m.items_read += len(parsed.get("Items") or []) + (1 if parsed.get("Item") else 0)
    responses = parsed.get("Responses")
    if isinstance(responses, dict):  # BatchGetItem: table -> items
        m.items_read += sum(len(found) for found in responses.values())


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
    seeded = all(
        result[f"report_rollups_equal_fold_{size}"]
        and result[f"report_ledger_entries_{size}"] == entries
        for size, entries in report_sizes().items()
    )
    if not seeded:
        print("report wallets: rollups or entries not as seeded", file=sys.stderr)
    return 0 if result["ledger_entries"] == result["ledger_seq"] and seeded else 1


def run() -> dict[str, Any]:
    with environment() as (endpoint, table_name):
        from credit_meter.storage import store
        from devtools.apigw import FakeContext, http_event
        from metering_api.app import handler

        store.reset_client()
        instrument(store.dynamodb_client())
        ctx = FakeContext()

        def call(
            method: str, path: str, body: dict[str, Any] | None = None, key: str | None = None
        ) -> tuple[dict[str, Any], float]:
            headers = {"idempotency-key": key} if key else {}
            event = http_event(method, path, body, headers, claims=BENCH_CALLER)
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
        # A member who brings their own provider key (BYOK): the tokens cost nothing and the
        # debit's condition checks the flag; the process learns it on the first refused guess.
        admin_client = store.dynamodb_client()
        admin_client.update_item(
            TableName=table_name,
            Key={"pk": {"S": "W#bench"}, "sk": {"S": "W"}},
            UpdateExpression="ADD ky :u",
            ExpressionAttributeValues={":u": {"SS": ["u3"]}},
        )
        byok_cycles = cycles(CYCLES // 4, keyed=False, tag="y", member="u3")
        # The wallet's organisation is read once per process and wallet (it never changes):
        # the first request of a cold process pays one GetItem more.
        from credit_meter.api import access

        access.forget_wallet_orgs()
        m = meter()
        m.reset()
        call("GET", wallet)
        cold_get = m.calls
        m.reset()
        call("GET", wallet)
        warm_get = m.calls
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
        from credit_meter.core.catalog import UsageLine
        from credit_meter.metering.service import Cost, Metering, Request

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
        reports = report_cost()

    result = {
        "round_trips_per_event": round(plain["round_trips"], 3),
        "wru_per_event": round(plain["wru_reported"], 3),
        "wru_per_event_billed": per_event_plain + projection,
        "wru_per_event_billed_sync": per_event_plain,
        "wru_per_event_billed_with_idempotency_key": per_event_keyed + projection,
        "round_trips_per_event_with_idempotency_key": round(keyed["round_trips"], 3),
        "charge_round_trips": round(charge_round_trips, 3),
        "round_trips_per_event_limit_and_member_budget": round(budgeted["round_trips"], 3),
        "round_trips_per_event_byok_member": round(byok_cycles["round_trips"], 3),
        "get_wallet_round_trips_cold_org_cache": cold_get,
        "get_wallet_round_trips_warm": warm_get,
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
        **reports,
    }
    if entries != seq:
        print(f"ledger projection incomplete: {entries} entries for seq {seq}", file=sys.stderr)
    return result


def reset_cost(table_name: str) -> dict[str, Any]:
    """Monthly resets through the real worker handler (SQS batches of ten): DynamoDB round
    trips per wallet reset and per dispatch, and the write units a reset costs."""
    from monthly_reset.app import handler as reset_worker

    from credit_meter.billing.grants import Grants
    from credit_meter.billing.periods import Periods
    from credit_meter.billing.plans import Plans
    from credit_meter.core import clock
    from credit_meter.core.idempotency import Request
    from credit_meter.metering.service import Metering
    from credit_meter.storage import store
    from devtools.lambda_context import FakeLambdaContext

    resets = Periods()
    plans, grants = (
        Plans(resets.store, resets.catalog, resets),
        Grants(resets.store, resets.catalog),
    )
    wallets = [f"bench-reset-{i}" for i in range(RESETS)]
    for i, wallet_id in enumerate(wallets):
        plans.put_wallet(wallet_id, "pro")
        grants.grant(wallet_id, Decimal(10), "promo", Request(f"r{i}"))
    period_end = Metering(resets.store).get_wallet(wallets[0]).period_end
    clock.set_clock(lambda: period_end + 60.0)
    try:
        m = meter()
        m.reset()
        due = list(resets.due_wallets())
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

    from credit_meter.billing.plans import Plans

    Plans().put_wallet("bench-topups", "free")
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


# -- the report path -------------------------------------------------------------------------

ZERO, ONE = Decimal(0), Decimal(1)
REPORT_DAYS = 60
REPORT_ANCHOR_DAY = 1
POSTS_PER_RECORD = 100  # postings per synthetic wallet write (one UTC day each)
SEED_THREADS = 6
_MODELS = ("gpt-4o-mini", "claude-haiku", "gpt-4o", "claude-sonnet", "o3", "claude-opus")
_FEATURES = ("chat", "search", "agent", "image", "voice")
_MEMBERS = (None, "ana", "bo", "cy", "dee", "eli", "fay", "gus")


def _usage(rng: random.Random) -> list[Any]:
    from credit_meter.core.catalog import UsageLine

    lines = [UsageLine("input_tokens", Decimal(rng.randint(100, 20_000)), rng.choice(_MODELS))]
    if rng.random() < 0.8:
        lines.append(UsageLine("output_tokens", Decimal(rng.randint(50, 4_000)), lines[0].model))
    if rng.random() < 0.1:
        lines.append(UsageLine("image_hd" if rng.random() < 0.3 else "image_standard", ONE))
    if rng.random() < 0.2:
        lines.append(UsageLine("app_call", Decimal(rng.randint(1, 5))))
    return lines


def synthetic_writes(
    wallet_id: str, entries: int, now: datetime
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(old image, new image) of a wallet's writes as the stream carries them: ``entries``
    postings spread evenly over the last ``REPORT_DAYS`` UTC days (today up to ``now``), up to
    ``POSTS_PER_RECORD`` of one day per write. Half are charges costed by usage, a tenth in
    plain credits, the rest reservations (committed with usage or with what they held, or
    released); the first posting is a large grant, and a promo grant comes every ~250."""
    from credit_meter.core import wallets
    from credit_meter.core.catalog import catalog
    from credit_meter.core.usage import encode_line
    from credit_meter.storage import items, wallet_record

    cat = catalog()
    rng = random.Random(entries)
    pk = items.wallet_pk(wallet_id)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    per_day = [entries // REPORT_DAYS + (d < entries % REPORT_DAYS) for d in range(REPORT_DAYS)]
    seq, balance = 0, ZERO
    for back, count in zip(range(REPORT_DAYS - 1, -1, -1), per_day, strict=True):
        day = today - timedelta(days=back)
        start_ms = int(day.timestamp() * 1000)
        span = max(1, int((now - day).total_seconds() * 1000)) if back == 0 else 86_400_000
        times = sorted(start_ms + rng.randrange(span) for _ in range(count))
        period_start = int(wallets.first_period(day, REPORT_ANCHOR_DAY)[0].timestamp())
        for first in range(0, count, POSTS_PER_RECORD):
            old_seq, posts, holds = seq, [], {}
            for at in times[first : first + POSTS_PER_RECORD]:
                seq += 1
                feature, member = rng.choice(_FEATURES), rng.choice(_MEMBERS)
                kind = rng.random()
                if seq == 1 or kind < 0.004:
                    amount = Decimal(10**9) if seq == 1 else Decimal(100)
                    gid = f"grt_{at:011x}{seq:012x}"
                    source = "purchase" if seq == 1 else "promo"
                    post = wallet_record.posting(
                        gid, "grant", amount, "posted", at, source=source, bucket_id=gid
                    )
                elif kind < 0.6:  # a charge: by usage, or in plain credits
                    lines = cat.itemise(_usage(rng)) if kind < 0.5 else []
                    cost = sum((x.cost for x in lines), ZERO) or Decimal(rng.randint(1, 500)) / 100
                    post = wallet_record.posting(
                        f"chg_bench{seq}",
                        "charge",
                        -cost,
                        "posted",
                        at,
                        feature=feature,
                        member_id=member,
                        usage=[encode_line(x) for x in lines] or None,
                    )
                else:  # a reservation ending: committed by usage, at what it held, released
                    lines = cat.itemise(_usage(rng)) if kind < 0.85 else []
                    held = Decimal(rng.randint(100, 1500)) / 100
                    charged = sum((x.cost for x in lines), ZERO) if lines else held
                    status = "committed"
                    if kind >= 0.95:
                        charged, status = ZERO, "released"
                    key = f"bench{seq:011d}"
                    hold: dict[str, Any] = {"c": held, "x": at // 1000 + 300, "f": feature}
                    if member is not None:
                        hold["m"] = member
                    holds[key] = hold
                    post = wallet_record.posting(
                        f"rsv_{key}",
                        "reservation",
                        -charged,
                        status,
                        at,
                        hold_key=key,
                        usage=[encode_line(x) for x in lines] or None,
                    )
                balance += post["d"]
                posts.append(post)
            old = {"pk": pk, "sk": wallet_record.WALLET_SK, "seq": old_seq, "hd": holds}
            new = {
                "pk": pk,
                "sk": wallet_record.WALLET_SK,
                "seq": seq,
                "posts": posts,
                "bal": balance,
            }
            new["ps"] = period_start
            yield old, new


def seed_wallet(store: Any, wallet_id: str, entries: int, now: datetime) -> list[dict[str, Any]]:
    """The wallet's ledger entries, grants-list lines and rollups as the projector writes
    them for the synthetic writes: ``project_change`` of each, entries by BatchWriteItem (on
    ``SEED_THREADS`` threads), rollups by the projector's conditional updates, in stream order
    per rollup item (different items side by side). Returns the entries."""
    from credit_meter.billing.plans import Plans
    from credit_meter.reports.projector import project_change
    from credit_meter.storage import wallet_record
    from credit_meter.storage.store import Update

    Plans(store).put_wallet(
        wallet_id, "enterprise", Decimal(1_000_000), REPORT_ANCHOR_DAY, org_id=BENCH_ORG
    )
    projections = [
        project_change(old, new) for old, new in synthetic_writes(wallet_id, entries, now)
    ]
    written = [e for p in projections for e in p.entries]
    rollups: dict[str, list[Update]] = {}
    for projection in projections:
        for update in projection.rollups:
            rollups.setdefault(update.key["sk"], []).append(update)

    def apply(updates: list[Update]) -> None:
        for update in updates:
            store.update(update)

    with ThreadPoolExecutor(SEED_THREADS) as pool:
        list(pool.map(store.put_entries, [written[i : i + 25] for i in range(0, len(written), 25)]))
        lines = [line for p in projections for line in p.grant_lines]
        list(pool.map(lambda line: store.set_fields(*line), lines))
        list(pool.map(apply, rollups.values()))
    # The wallet's seq as the synthetic writes left it (the entries count against it).
    store.update(
        Update(wallet_record.key(wallet_id), "SET seq = :n", None, values={":n": len(written)})
    )
    return written


def stored_rollups(client: Any, table_name: str, pk: str) -> dict[str, dict[str, Any]]:
    """A wallet's rollups as :func:`credit_meter.core.usage.fold` gives them (no key, no kind)."""
    from credit_meter.core.usage import ROLLUP_PREFIX
    from credit_meter.storage.store import from_item

    found = {}
    for page in client.get_paginator("query").paginate(
        TableName=table_name,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :u)",
        ExpressionAttributeValues={":pk": {"S": pk}, ":u": {"S": ROLLUP_PREFIX}},
    ):
        for raw in page["Items"]:
            item = from_item(raw)
            found[item["sk"]] = {k: v for k, v in item.items() if k not in ("pk", "sk", "kind")}
    return found


def count_entries(client: Any, table_name: str, pk: str) -> int:
    from credit_meter.storage.items import ENTRY_PREFIX

    return sum(
        page["Count"]
        for page in client.get_paginator("query").paginate(
            TableName=table_name,
            Select="COUNT",
            KeyConditionExpression="pk = :pk AND begins_with(sk, :t)",
            ExpressionAttributeValues={":pk": {"S": pk}, ":t": {"S": ENTRY_PREFIX}},
        )
    )


def report_error(path: str, query: dict[str, str] | None) -> Exception | None:
    """What the report behind an error answer raises when called directly (the handler logs
    it to stdout, which the bench silences)."""
    from credit_meter.reports.reports import Reports

    wallet_id = path.split("/")[3]
    try:
        if query is None:
            Reports().summary(wallet_id)
        else:
            Reports().series(wallet_id, query["granularity"], query["from"], query["to"], None)
    except Exception as error:
        return error
    return None


def report_sizes() -> dict[str, int]:
    """The report wallets' sizes by label: ``1k``, ``100k``."""
    return {f"{n // 1000}k" if n % 1000 == 0 else str(n): n for n in REPORT_ENTRIES}


def report_cost() -> dict[str, Any]:
    """Usage reports through the real handler on wallets of ``REPORT_ENTRIES`` ledger entries:
    per report, DynamoDB round trips, items returned, read units reported and median time.

    The wallets live in a second table of the template's definition without its stream:
    DynamoDB Local writes a stream record per item, which would make seeding 100,000 entries
    take minutes, and a report's reads do not touch the stream."""
    from botocore.config import Config

    from credit_meter.core import usage
    from credit_meter.storage import items
    from credit_meter.storage.store import Store
    from devtools import ddb_local, table
    from devtools.apigw import FakeContext, http_event
    from metering_api.app import handler

    if not REPORT_ENTRIES:
        return {}
    seeder = ddb_local.client(
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"],
        config=Config(
            read_timeout=120,
            max_pool_connections=SEED_THREADS * 2,
            retries={"mode": "standard", "max_attempts": 5},
            parameter_validation=False,
        ),
    )
    bench_table = os.environ["TABLE_NAME"]
    report_table = f"{bench_table}-reports"
    definition = table.table_definition_from_template()
    definition.pop("StreamSpecification", None)
    seeder.create_table(TableName=report_table, **definition)
    seeder.get_waiter("table_exists").wait(TableName=report_table)

    now = datetime.now(UTC)
    today = now.date()
    months_ago_23 = today.year * 12 + today.month - 1 - 23
    reports = {
        "series_30d": {
            "granularity": "day",
            "from": (today - timedelta(days=29)).isoformat(),
            "to": today.isoformat(),
        },
        "series_24m": {
            "granularity": "month",
            "from": f"{months_ago_23 // 12:04d}-{months_ago_23 % 12 + 1:02d}",
            "to": today.strftime("%Y-%m"),
        },
        "summary": None,
    }
    ctx = FakeContext()
    result: dict[str, Any] = {
        "report_seeding": (
            f"synthetic stream records (<= {POSTS_PER_RECORD} postings of one UTC day each) "
            "through credit_meter.reports.projector.project_change; entries by BatchWriteItem, "
            "rollups by the projector's conditional UpdateItems; in a table of the template's "
            "definition without its stream"
        ),
        "report_days": REPORT_DAYS,
    }
    os.environ["TABLE_NAME"] = report_table
    try:
        for size, entries in report_sizes().items():
            wallet_id = f"bench-report-{size}"
            pk = items.wallet_pk(wallet_id)
            start = time.perf_counter()
            written = seed_wallet(Store(report_table, seeder), wallet_id, entries, now)
            result[f"report_seed_s_{size}"] = round(time.perf_counter() - start, 1)
            # The seeded table is what the projector makes of those writes.
            stored = stored_rollups(seeder, report_table, pk)
            result[f"report_ledger_entries_{size}"] = count_entries(seeder, report_table, pk)
            result[f"report_rollups_{size}"] = len(stored)
            result[f"report_rollups_equal_fold_{size}"] = stored == usage.fold(written)

            for name, query in reports.items():
                path = f"/v1/wallets/{wallet_id}/usage" + ("/summary" if query is None else "")

                def get(path: str = path, query: dict[str, str] | None = query) -> float:
                    begin = time.perf_counter()
                    event = http_event("GET", path, query=query, claims=BENCH_CALLER)
                    response = handler(event, ctx)
                    elapsed = time.perf_counter() - begin
                    if response["statusCode"] != 200:
                        raise RuntimeError(
                            f"GET {path}: {response['statusCode']} {response['body']}"
                        ) from report_error(path, query)
                    return elapsed

                get()  # warm-up
                m = meter()
                m.reset()
                times = [get() for _ in range(REPORT_RUNS)]
                per_run = {
                    "round_trips": m.calls / REPORT_RUNS,
                    "items": m.items_read / REPORT_RUNS,
                    "rcu_reported": m.wru_reported / REPORT_RUNS,
                }
                for figure, value in per_run.items():
                    result[f"report_{name}_{figure}_{size}"] = round(value, 3)
                result[f"report_{name}_ms_{size}"] = round(statistics.median(times) * 1000, 2)
    finally:
        os.environ["TABLE_NAME"] = bench_table
    return result


if __name__ == "__main__":
    sys.exit(main())
