"""The wallet item's attribute names (docs/data-model.md, "The wallet item"), its key and
its index partitions."""

from __future__ import annotations

import zlib
from decimal import Decimal
from typing import Any

from credit_meter.storage.items import wallet_pk

Item = dict[str, Any]
ZERO = Decimal(0)

# -- top-level attributes (docs/data-model.md, "The wallet item") ---------------------------

KIND = "kind"  # always "wallet"
CREATED = "created"  # when the wallet was made (ms)
WALLET_ID = "wallet_id"
PLAN = "plan"
ALLOWANCE = "allow"
ORG = "org"
BYPASS_FLAG = "bp"
BYOK_MEMBERS = "ky"
PENDING_PLAN = "pn"
PENDING_ALLOWANCE = "pa"
ANCHOR_DAY = "anc"
PERIOD_START = "ps"
PERIOD_END = "pe"
OVERAGE = "ovr"
DUE_SHARD = "due_shard"
DUE_AT = "due_at"
REFERRED_BY = "rby"
REFERRALS = "rfc"
BALANCE = "bal"
HELD = "held"
AVAILABLE = "avail"
DRAWN = "drawn"
USED = "used"
BUCKETS = "bk"
BUCKETS_VERSION = "bver"
HOLDS = "hd"
SEQ = "seq"
SWEEP_SHARD = "sweep_shard"
SWEEP_AT = "sweep_at"
LIMIT = "lim"
LIMIT_ALERT = "lat"
LIMIT_HIT = "lhit"
LIMIT_ROOM = "lrem"
ALERT_THRESHOLDS = "alr"
MEMBER_BUDGETS = "mb"
AUTO_TOPUP_THRESHOLD = "atx"
AUTO_TOPUP_STATE = "ats"
AUTO_TOPUP_CROSSING = "atn"
AUTO_TOPUP_RETRY_AFTER = "atb"
POSTS = "posts"

ATTRIBUTES = frozenset(
    {
        KIND, CREATED, WALLET_ID, PLAN, ALLOWANCE, ORG, BYPASS_FLAG, BYOK_MEMBERS, PENDING_PLAN,
        PENDING_ALLOWANCE, ANCHOR_DAY, PERIOD_START, PERIOD_END, OVERAGE, DUE_SHARD, DUE_AT,
        REFERRED_BY, REFERRALS, BALANCE, HELD, AVAILABLE, DRAWN, USED, BUCKETS, BUCKETS_VERSION,
        HOLDS, SEQ, SWEEP_SHARD, SWEEP_AT, LIMIT, LIMIT_ALERT, LIMIT_HIT, LIMIT_ROOM,
        ALERT_THRESHOLDS, MEMBER_BUDGETS, AUTO_TOPUP_THRESHOLD, AUTO_TOPUP_STATE,
        AUTO_TOPUP_CROSSING, AUTO_TOPUP_RETRY_AFTER, POSTS,
    }
)  # fmt: skip

# -- inside an open hold (``hd.<key>``) -----------------------------------------------------

HOLD_CREDITS = "c"
HOLD_EXPIRES_AT = "x"
HOLD_FEATURE = "f"
HOLD_MEMBER = "m"
HOLD_BUDGET_TAG = "b"  # the member's tag when the hold counts against the member's budget
HOLD_MODE = "p"  # the pricing mode (byok, bypass) when not credits
HOLD_DIGEST = "h"  # a prefix of the request's digest

# -- inside a member budget (``mb.<tag>``) --------------------------------------------------

BUDGET_MEMBER = "n"
BUDGET_CAP = "c"
BUDGET_USED = "u"
BUDGET_ROOM = "r"
BUDGET_HIT = "h"

WALLET_SK = "W"
# ``lrem`` (room left under the spending limit) of a wallet without a limit: every debit still
# counts down from it, so the hot path's one expression serves wallets with and without limits.
NO_LIMIT_ROOM = Decimal(10**15)
# A member's budget lives in the wallet (``mb.<tag>``) so it is tested in the debit's own write;
# this many at most keeps the hot item small (each adds ~60 bytes).
MAX_MEMBER_BUDGETS = 32
# Wallets with open holds are spread over this many partitions of the sweep index.
SWEEP_SHARDS = 16
SWEEP_INDEX = "SweepIndex"
# Wallets are spread over this many partitions of the due index (period ends, bucket expiries).
DUE_SHARDS = 16
DUE_INDEX = "DueIndex"


def key(wallet_id: str) -> dict[str, str]:
    return {"pk": wallet_pk(wallet_id), "sk": WALLET_SK}


def sweep_shard(wallet_id: str) -> str:
    return f"S#{zlib.crc32(wallet_id.encode()) % SWEEP_SHARDS:02d}"


def due_shard(wallet_id: str) -> str:
    return f"D#{zlib.crc32(wallet_id.encode()) % DUE_SHARDS:02d}"
