"""Identifiers.

A reservation id carries the hold's amount (``rsv_<key>_<micro-credits base 36>``). Commit and
release then compute the refund in one conditional write without reading the wallet first; the
write's condition (the hold under ``<key>`` holds exactly that amount) rejects a forged id.
With an ``Idempotency-Key`` the ``<key>`` part is derived from it, so a retry finds its first
result; without one it is random.

A hold counted against a member's budget adds that member's tag (``…_<12 hex>``): commit and
release must give the member's room back in the same write, and the tag names where it lives
(``mb.<tag>`` in the wallet) without a read. The condition checks the hold carries that tag.

A hold priced in a mode other than credits (``byok``: the member's own provider key pays the
tokens; ``bypass``: a self-hosted wallet) ends in ``…_k`` or ``…_x``: the commit prices its
usage the same way without a read, and its condition checks the hold was made so.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from decimal import Decimal

from credit_meter.core.money import from_micros, to_micros

_KEY_HEX = 20  # 80 bits: collisions inside one wallet are not a practical concern
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_TAG_HEX = 12  # 48 bits: two members of one wallet will not share a tag
_RESERVATION = re.compile(
    rf"rsv_([0-9a-f]{{{_KEY_HEX}}})_([0-9a-z]{{1,16}})(?:_([0-9a-f]{{{_TAG_HEX}}}))?(?:_([kx]))?"
)
MODE_MARKS = {"byok": "k", "bypass": "x"}
_MARK_MODES = {mark: mode for mode, mark in MODE_MARKS.items()}


def op_key(wallet_id: str, op: str, idempotency_key: str | None) -> str:
    """The per-wallet key of an operation: derived from the client's key, else random."""
    if idempotency_key is None:
        return secrets.token_hex(_KEY_HEX // 2)
    digest = hashlib.sha256(f"{wallet_id}\n{op}\n{idempotency_key}".encode()).hexdigest()
    return digest[:_KEY_HEX]


def _b36(n: int) -> str:
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _B36[r] + out
        if n == 0:
            return out


def member_tag(member_id: str) -> str:
    """Where a member's budget lives in its wallet (``mb.<tag>``): short and fixed-length, so
    a reservation id can carry it."""
    return hashlib.sha256(member_id.encode()).hexdigest()[:_TAG_HEX]


@dataclass(frozen=True, slots=True)
class ReservationId:
    key: str
    credits: Decimal
    member_tag: str | None = None  # set when the hold counts against a member's budget
    mode: str | None = None  # byok or bypass: how the hold was priced (None: credits)

    def __str__(self) -> str:
        tag = "" if self.member_tag is None else f"_{self.member_tag}"
        mark = "" if self.mode is None else f"_{MODE_MARKS[self.mode]}"
        return f"rsv_{self.key}_{_b36(to_micros(self.credits))}{tag}{mark}"

    @classmethod
    def parse(cls, text: str) -> ReservationId | None:
        match = _RESERVATION.fullmatch(text)
        if match is None:
            return None
        mark = match.group(4)
        return cls(
            match.group(1),
            from_micros(int(match.group(2), 36)),
            match.group(3),
            None if mark is None else _MARK_MODES[mark],
        )


def charge_id(key: str) -> str:
    return f"chg_{key}"


def grant_id(at_ms: int, *parts: str) -> str:
    """``grt_<ms hex><digest>``: ids sort by when the grant was made (the grants list relies on
    it), and the digest of ``parts`` (what made the grant) keeps them apart and repeatable."""
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]
    return f"grt_{at_ms:011x}{digest}"


GRANT_ID = re.compile(r"grt_[0-9a-f]{23}")
