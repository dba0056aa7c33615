"""The ledger projector applies a wallet's stream records in order, even when one fails.

Powertools' batch processor goes on after a failed record; if a later record of the same wallet
were applied, its rollups' watermark would pass the failed one and the retry would be refused
as a replay — usage lost. The handler therefore fails the rest of the batch unread once a
record fails; the retry (Lambda resumes from the first failure) applies everything once.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from credit_meter.core import usage
from credit_meter.storage import items
from credit_meter.storage.store import Store, Update
from devtools.apigw import FakeContext

USAGE = [{"meter": "input_tokens", "quantity": 2000, "model": "gpt-4o"}]


def _rollups_and_fold(wallet_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    store = Store()
    pk = items.wallet_pk(wallet_id)
    rollups = {
        i["sk"]: {k: v for k, v in i.items() if k not in ("pk", "sk", "kind")}
        for i in store.query_between(pk, "U#", "U#~")
    }
    entries = store.query_between(pk, "T#", "T#~")
    return rollups, usage.fold(entries)


def test_a_failed_record_stops_the_batch_and_its_retry_counts_once(
    fresh_table: str,
    stream_event: Callable[[], dict[str, Any]],
    api: Callable[..., tuple[int, dict[str, str], Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert api("PUT", "/v1/wallets/w1", {"plan": "pro"})[0] == 201
    for feature in ("chat", "search", "chat"):
        assert api("POST", "/v1/wallets/w1/charges", {"feature": feature, "usage": USAGE})[0] == 201
    event = stream_event()
    wallet_records = [r for r in event["Records"] if r["dynamodb"]["Keys"]["sk"]["S"] == "W"]
    assert len(wallet_records) == 4  # the creation and three charges
    event = {"Records": wallet_records}
    from ledger_projector.app import handler  # the handlers' path is set up by conftest

    # The second charge's first rollup update fails (a throttle, say): nothing after it is
    # applied in this invocation, and every record from it on is reported failed.
    real_update = Store.update
    calls = {"n": 0}

    def failing(self: Store, update: Update) -> None:
        if update.key["sk"].startswith("U#"):
            calls["n"] += 1
            if calls["n"] == 5:  # creation: day; charge 1: day, month, period; charge 2: day
                raise RuntimeError("throttled")
        real_update(self, update)

    monkeypatch.setattr(Store, "update", failing)
    result = handler(event, FakeContext())
    failed = [f["itemIdentifier"] for f in result["batchItemFailures"]]
    sequence = [r["dynamodb"]["SequenceNumber"] for r in wallet_records]
    assert failed == sequence[2:]
    rollups, _ = _rollups_and_fold("w1")
    day = next(v for k, v in rollups.items() if k.startswith("U#D#"))
    assert (day["t"], day["n"]) == (Decimal("0.2"), 1)  # only the first charge so far

    # Lambda delivers the batch again from the failed record (here: the whole batch again,
    # which replays the first two records as well): every charge counts exactly once.
    monkeypatch.setattr(Store, "update", real_update)
    assert handler(event, FakeContext()) == {"batchItemFailures": []}
    rollups, folded = _rollups_and_fold("w1")
    assert rollups == folded
    day = next(v for k, v in rollups.items() if k.startswith("U#D#"))
    assert (day["t"], day["n"], day["F#chat"], day["F#search"]) == (
        Decimal("0.6"),
        3,
        Decimal("0.4"),
        Decimal("0.2"),
    )
