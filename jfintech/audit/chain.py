"""The tamper-evident chain: canonical JSON, hashing, signing, sealing and verification.

Each event's ``hash`` is SHA-256 of its canonical JSON (sorted keys, no whitespace, UTF-8), a
document that includes the previous event's hash, its position ``seq`` and its id. Its
``signature`` is an HMAC-SHA256 of (chain, seq, hash) with ``settings.AUDIT_HMAC_KEY``; the
chain head (AuditChainHead) carries its own HMAC under a different label, so no stored event
signature can stand in for an old head. Verification accepts signatures made with the current
key or any of ``settings.AUDIT_HMAC_PREVIOUS_KEYS`` (key rotation).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.utils import timezone

from jfintech.audit.models import AuditChainHead, AuditEvent

GENESIS = "0" * 64
LOCK_NAMESPACE = 0x4A46_0A17  # pg_advisory_xact_lock(namespace, chain): "JF audit"
CANONICAL_FIELDS = (
    "id",
    "tenant_id",
    "seq",
    "prev_hash",
    "occurred_at",
    "actor_kind",
    "actor_id",
    "actor_display",
    "action",
    "object_type",
    "object_id",
    "before",
    "after",
    "request_id",
    "trace_id",
)
STORED_FIELDS = (*CANONICAL_FIELDS, "hash", "signature")


def chain_of(tenant_id: int | None) -> int:
    return tenant_id or 0


def _keys() -> list[bytes]:
    current = settings.AUDIT_HMAC_KEY
    if not current:
        raise ImproperlyConfigured("settings.AUDIT_HMAC_KEY is empty: audit events cannot be signed.")
    return [k.encode() for k in (current, *settings.AUDIT_HMAC_PREVIOUS_KEYS) if k]


def canonical_json(row: dict) -> str:
    doc = {f: row[f] for f in CANONICAL_FIELDS}
    doc["occurred_at"] = row["occurred_at"].astimezone(UTC).isoformat()
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(row: dict) -> str:
    return hashlib.sha256(canonical_json(row).encode()).hexdigest()


def _mac(key: bytes, label: str, chain: int, seq: int, digest: str) -> str:
    return hmac.new(
        key, f"jfintech.audit.v1\n{label}\n{chain}\n{seq}\n{digest}".encode(), hashlib.sha256
    ).hexdigest()


def sign(label: str, chain: int, seq: int, digest: str) -> str:
    return _mac(_keys()[0], label, chain, seq, digest)


def signature_valid(signature: str, label: str, chain: int, seq: int, digest: str) -> bool:
    return any(hmac.compare_digest(signature, _mac(k, label, chain, seq, digest)) for k in _keys())


# --- Sealing (right before COMMIT) -------------------------------------------------------------


def seal(pending: dict[int, list[int]]) -> None:
    """Link the given unsealed events into their chains. Runs inside the writing transaction.

    Chains are locked in ascending order, so two transactions writing to the same two tenants
    cannot deadlock. Ids of events rolled back with a savepoint are simply not found.
    """
    table, head_table = AuditEvent._meta.db_table, AuditChainHead._meta.db_table
    for chain in sorted(pending):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_NAMESPACE, chain % 2**31])
            cursor.execute(f"SELECT seq, hash FROM {head_table} WHERE chain = %s", [chain])
            head = cursor.fetchone()
        seq, prev = head if head else (0, GENESIS)
        rows = list(
            AuditEvent.objects.filter(pk__in=pending[chain], hash__isnull=True)
            .order_by("pk")
            .values(*CANONICAL_FIELDS)
        )
        if not rows:
            continue
        updates = []
        for row in rows:
            seq += 1
            row.update(seq=seq, prev_hash=prev)
            prev = event_hash(row)
            updates.append((seq, row["prev_hash"], prev, sign("event", chain, seq, prev), row["id"]))
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {table} SET seq = %s, prev_hash = %s, hash = %s, signature = %s WHERE id = %s",
                updates,
            )
            cursor.execute(
                f"""INSERT INTO {head_table} (chain, tenant_id, seq, hash, signature, updated_at)
                    VALUES (%s, %s, %s, %s, %s, %s)
                    ON CONFLICT (chain) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash,
                        signature = EXCLUDED.signature, updated_at = EXCLUDED.updated_at""",
                [chain, rows[0]["tenant_id"], seq, prev, sign("head", chain, seq, prev), timezone.now()],
            )


class PendingSeal:
    """The pre-commit hook of one transaction: the events it recorded, by chain."""

    def __init__(self):
        self.pending: dict[int, list[int]] = {}

    def add(self, chain: int, event_id: int) -> None:
        self.pending.setdefault(chain, []).append(event_id)

    def __call__(self) -> None:
        seal(self.pending)


def schedule_seal(event: AuditEvent) -> None:
    """Seal ``event`` right before its transaction commits (or now, on a backend without hooks)."""
    conn = transaction.get_connection()
    chain = chain_of(event.tenant_id)
    if not getattr(conn, "supports_pre_commit_hooks", False):
        seal({chain: [event.pk]})  # holds the chain's lock until commit: correct, only slower
        return
    hook = conn.pre_commit_hooks.get("jfintech.audit.seal")
    if hook is None:
        hook = PendingSeal()
        conn.on_pre_commit("jfintech.audit.seal", hook)
    hook.add(chain, event.pk)


# --- Verification ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainReport:
    chain: int
    tenant_slug: str | None
    events: int
    head_seq: int | None
    error: str | None = None
    bad_event_id: int | None = None
    bad_seq: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def describe(self) -> str:
        name = self.tenant_slug or "platform"
        if self.ok:
            return f"chain {name}: OK, {self.events} events"
        where = (
            f"event id={self.bad_event_id} seq={self.bad_seq}" if self.bad_event_id else f"seq={self.bad_seq}"
        )
        return f"chain {name}: BROKEN at {where}: {self.error}"


def verify_chain(tenant=None, *, chunk_size: int = 2000) -> ChainReport:
    """Recompute one chain in a consistent snapshot and check it against its signed head."""
    chain = chain_of(getattr(tenant, "pk", None))
    slug = getattr(tenant, "slug", None)
    events = AuditEvent.objects.filter(tenant=tenant)
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost:  # one snapshot for the events and the head
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        head = AuditChainHead.objects.filter(chain=chain).first()
        report = dict(chain=chain, tenant_slug=slug, head_seq=head.seq if head else None)
        unsealed = events.filter(hash__isnull=True).order_by("pk").first()
        if unsealed is not None:
            return ChainReport(
                **report, events=0, error="committed without being chained", bad_event_id=unsealed.pk
            )
        prev, count = GENESIS, 0
        for row in (
            events.filter(seq__isnull=False)
            .order_by("seq")
            .values(*STORED_FIELDS)
            .iterator(chunk_size=chunk_size)
        ):
            count += 1
            bad = dict(**report, events=count, bad_event_id=row["id"], bad_seq=row["seq"])
            if row["seq"] != count:
                return ChainReport(**bad, error=f"expected seq {count}: an event is missing or inserted")
            if row["prev_hash"] != prev:
                return ChainReport(**bad, error="prev_hash does not match the previous event's hash")
            if event_hash(row) != row["hash"]:
                return ChainReport(**bad, error="content does not match its hash (altered)")
            if not signature_valid(row["signature"], "event", chain, row["seq"], row["hash"]):
                return ChainReport(**bad, error="signature invalid (hash recomputed without the key)")
            prev = row["hash"]
    if head is None:
        if count:
            return ChainReport(**report, events=count, bad_seq=count, error="events but no signed chain head")
        return ChainReport(**report, events=0)
    if not signature_valid(head.signature, "head", chain, head.seq, head.hash):
        return ChainReport(**report, events=count, bad_seq=head.seq, error="chain head signature invalid")
    if head.seq != count or head.hash != prev:
        return ChainReport(
            **report,
            events=count,
            bad_seq=count + 1 if head.seq > count else head.seq,
            error=f"chain head is at seq {head.seq} but the events end at seq {count} "
            "(events removed, or the head rewound)",
        )
    return ChainReport(**report, events=count)


def verify_all(tenants=None) -> list[ChainReport]:
    """Every tenant's chain plus the platform chain (or the given tenants' only)."""
    from jfintech.tenancy.models import Tenant

    if tenants is not None:
        return [verify_chain(t) for t in tenants]
    return [verify_chain(None), *(verify_chain(t) for t in Tenant.objects.order_by("pk"))]
