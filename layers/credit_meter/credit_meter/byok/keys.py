"""Bring your own key: a user's own AI provider API key, stored envelope-encrypted.

The key item lives in the organisation's partition, ``O#<org>`` / ``K#<user_id>``
(``kind=byok``): provider, last four characters, times, and the secret sealed by
:mod:`credit_meter.byok.envelope` under the context ``{"org_id", "user_id"}`` (so it opens for that
user of that organisation only). Only the internal path (:meth:`Byok.reveal`) ever decrypts it,
and each time it leaves an audit line ``KA#<user>#<ms>#<random>`` (``kind=byok-audit``, kept a
year by ``ttl``) before the key is handed out.

The metering hot path learns who brings a key without reading this item: every wallet of the
organisation carries the user ids with a key in a String Set, ``ky``, kept by the flag writes
below. Why they converge under any interleaving, once every operation has finished its flag
writes, is written at :func:`_flag` (a request that stops half-way leaves them stale until
the next PUT or DELETE).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from credit_meter.byok import envelope
from credit_meter.core import clock
from credit_meter.core.errors import ByokNotFound
from credit_meter.storage import items, wallet_record
from credit_meter.storage.store import Check, Put, Store, Update, WriteRejected

KEY_PREFIX = "K#"
AUDIT_PREFIX = "KA#"
FLAG = wallet_record.BYOK_MEMBERS  # the wallet's String Set of its organisation's users with a key
AUDIT_DAYS = 365
_PAGE = 100


@dataclass(frozen=True, slots=True)
class ByokView:
    """What may be shown of a stored key: never the key itself."""

    provider: str
    last4: str
    created_at: str  # RFC 3339, UTC
    updated_at: str


def key_of(org_id: str, user_id: str) -> dict[str, str]:
    return {"pk": items.org_pk(org_id), "sk": f"{KEY_PREFIX}{user_id}"}


def context_of(org_id: str, user_id: str) -> dict[str, str]:
    """The encryption context: binds the ciphertext and its data key to this user."""
    return {"org_id": org_id, "user_id": user_id}


def _view(item: dict[str, Any]) -> ByokView:
    return ByokView(
        provider=item["provider"],
        last4=item["last4"],
        created_at=item["created_at"],
        updated_at=item["updated_at"],
    )


class Byok:
    """A user's own provider key: set (or rotate), show, remove, and reveal internally."""

    def __init__(self, store: Store | None = None, wrapper: envelope.Keys | None = None) -> None:
        self.store = store or Store()
        self._wrapper = wrapper

    @property
    def wrapper(self) -> envelope.Keys:
        """The key wrapper, chosen on first use (reads that decrypt nothing need none)."""
        if self._wrapper is None:
            self._wrapper = envelope.keys()
        return self._wrapper

    def put(self, org_id: str, user_id: str, provider: str, api_key: str) -> ByokView:
        """Store the user's key, replacing any before it, then flag the organisation's
        wallets. One write replaces every secret attribute at once: a rotation never leaves
        a new data key next to an old ciphertext."""
        sealed = envelope.seal(api_key, context_of(org_id, user_id), self.wrapper)
        now = clock.iso(clock.now_ts())
        fields: dict[str, Any] = {
            "kind": "byok",
            "user_id": user_id,
            "provider": provider,
            "last4": api_key[-4:],
            "updated_at": now,
            "wrapped_key": sealed.wrapped_key,  # Binary, as the three below
            "nonce": sealed.nonce,
            "ciphertext": sealed.ciphertext,
            "key_id": sealed.key_id,
        }
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        values = {f":f{i}": value for i, value in enumerate(fields.values())}
        sets = [f"#f{i} = :f{i}" for i in range(len(fields))]
        names["#created"], values[":now"] = "created_at", now
        sets.append("#created = if_not_exists(#created, :now)")  # a rotation keeps it
        self.store.update(
            Update(
                key=key_of(org_id, user_id),
                expression="SET " + ", ".join(sets),
                condition=None,  # replaces whatever is there: the same request twice is fine
                names=names,
                values=values,
            )
        )
        _fan_out(self.store, org_id, user_id, present=True)
        stored = self.store.get(key_of(org_id, user_id))
        if stored is None:  # deleted meanwhile by a concurrent request: answer what we wrote
            return ByokView(provider, api_key[-4:], now, now)
        return _view(stored)

    def get(self, org_id: str, user_id: str) -> ByokView:
        found = self.store.get(key_of(org_id, user_id))
        if found is None:
            raise ByokNotFound(f"user {user_id} has no provider key stored")
        return _view(found)

    def delete(self, org_id: str, user_id: str) -> None:
        """Remove the user's key (nothing to remove is fine), then unflag the wallets."""
        self.store.delete(key_of(org_id, user_id))
        _fan_out(self.store, org_id, user_id, present=False)

    def reveal(
        self, org_id: str, user_id: str, purpose: str, request_id: str | None = None
    ) -> tuple[str, str]:
        """The provider and the plaintext key, for the internal path only. The audit line is
        written before the key is returned: a failed audit write hands out nothing."""
        found = self.store.get(key_of(org_id, user_id))
        if found is None:
            raise ByokNotFound(f"user {user_id} has no provider key stored")
        sealed = envelope.Sealed(
            wrapped_key=found["wrapped_key"],
            nonce=found["nonce"],
            ciphertext=found["ciphertext"],
            key_id=found["key_id"],
        )
        api_key = envelope.open_sealed(sealed, context_of(org_id, user_id), self.wrapper)
        now = clock.now_ts()
        audit: dict[str, Any] = {
            "pk": items.org_pk(org_id),
            "sk": f"{AUDIT_PREFIX}{user_id}#{int(now * 1000):013d}#{secrets.token_hex(4)}",
            "kind": "byok-audit",
            "user_id": user_id,
            "purpose": purpose,
            "key_id": sealed.key_id,
            "at": clock.iso(now),
            "ttl": int(now) + AUDIT_DAYS * 86400,
            "request_id": request_id,  # left out when None
        }
        self.store.put_new(Put(audit))
        return found["provider"], api_key


# -- the wallets' flags ----------------------------------------------------------------------


def _lines(store: Store, org_id: str, prefix: str) -> Iterator[dict[str, Any]]:
    """Every item of the organisation's partition under ``prefix``, read consistently: a
    line written before this read began is seen (the convergence below relies on it)."""
    after: str | None = None
    while True:
        found, after = store.query_page(items.org_pk(org_id), prefix, _PAGE, after)
        yield from found
        if after is None:
            return


def _fan_out(store: Store, org_id: str, user_id: str, present: bool) -> None:
    """Bring every wallet of the organisation in line with the user's key item."""
    for line in _lines(store, org_id, items.wallet_pk("")):
        _flag(store, org_id, user_id, line["wallet_id"], present)


def flags_for_new_member(store: Store, org_id: str, wallet_id: str) -> int:
    """Flag a wallet that joined the organisation with the users who have a key. Call it after
    the wallet's membership line is written. Returns how many flags it set."""
    return sum(
        _flag(store, org_id, line["user_id"], wallet_id, present=True)
        for line in _lines(store, org_id, KEY_PREFIX)
        if line.get("kind") == "byok"
    )


def _flag(store: Store, org_id: str, user_id: str, wallet_id: str, present: bool) -> bool:
    """Add the user to (``present``) or remove them from the wallet's ``ky``, in one
    transaction with a check that the key item is in that very state. False: the check or the
    wallet's existence failed, and nothing was written.

    Why the flags converge under any interleaving of PUTs, DELETEs and wallets joining (once
    every request has finished, ``user in wallet.ky`` exactly when the key item exists):

    * a flag write is idempotent (a set's ADD/DELETE) and succeeds only if, at that instant,
      the key item is in the state it asserts (exists for an add, absent for a remove);
    * take the last change of the key item, C (a PUT or a DELETE), and its final state S. After
      C, every flag write that succeeds agrees with S, so it is enough that one is made after C
      for each wallet, or, when S is "absent", that the wallet was never flagged at all;
    * C's own pass lists the memberships consistently, after C. A wallet it lists gets a
      write checked against S after C: it succeeds (the item does not change any more);
    * a wallet it does not list had its membership written after that listing began, so
      after C. Its join pass (:func:`flags_for_new_member`) lists the key lines after its
      membership is written, so after C: it sees the key exactly when S is "exists" and then
      adds under a check that passes. When S is "absent", nothing ever added the user to it:
      an add must have succeeded before C, by a pass that already knew the wallet, so its
      membership existed before C, and C's listing would have seen it.

    A wallet never leaves its organisation (``org`` is set once) and never disappears, so no
    other case exists. A skipped write (a refused check) is one a later operation's pass makes.
    A request that dies half-way has answered an error; its retry makes the pass again.
    """
    check = Check(
        key_of(org_id, user_id),
        "attribute_exists(pk)" if present else "attribute_not_exists(pk)",
    )
    update = wallet_record.byok_member_update(wallet_id, user_id, present)
    try:
        store.transact(check, update)
    except WriteRejected:
        return False
    return True
