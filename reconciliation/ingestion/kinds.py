"""Kinds whose rows another app keeps: ingestion receives them, the kind's loader stores them.

A source of such a kind (``reconciliation.models.HandedOffKind``: filings' ``parties`` and
``cash_transactions``) goes through everything a record source does — the upload and push API,
the batch, the sha256 duplicate check, the empty and truncated file rules of the CSV and JSON
parsers, every row accepted or stored in ``reconciliation_rejection`` with its reason, one load per
source at a time, the audit events and metrics — except the last step: its rows are not COPYed
into ``reconciliation_record`` (whose columns and natural key are records') but typed by the kind's
``clean`` and handed to its ``load``, in the load's one transaction (services._load_kind).

The owning app registers its loader when it starts (filings.apps). A source of a kind whose
loader is not registered is refused when it is configured and fails loudly when loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


class RowRejected(Exception):
    """A row the kind's ``clean`` or ``load`` cannot take: its reason code and message."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


# One row on its way in: (line number, raw text, typed values).
Row = tuple[int, str, dict]


@dataclass(frozen=True)
class KindLoader:
    kind: str
    # The fields a row can carry: a CSV mapping's ``columns`` maps them to headers, a JSON record
    # names them (any other name is malformed_row). Their text values reach ``clean``.
    fields: tuple[str, ...]
    # The fields a CSV mapping must map.
    required: tuple[str, ...]
    # {field: text or None} -> typed row, or raise RowRejected.
    clean: Callable[[dict], dict]
    # A typed row's identity within one file, as a message names it ("party C-1"): a second row
    # with the same identity is duplicate_key (the first occurrence stands, as for records).
    key: Callable[[dict], str]
    # Store the accepted rows of ``batch`` (an IngestionBatch), inside the load's transaction and
    # under the source's lock; returns the rows it refused, as (row, reason, message).
    load: Callable[..., list[tuple[Row, str, str]]]


_LOADERS: dict[str, KindLoader] = {}


def register(loader: KindLoader) -> None:
    from reconciliation.models import HandedOffKind

    if loader.kind not in HandedOffKind.values:
        raise ValueError(f"{loader.kind!r} is not a handed-off kind ({', '.join(HandedOffKind.values)})")
    _LOADERS[loader.kind] = loader


def loader_for(kind: str) -> KindLoader | None:
    """The registered loader of a handed-off kind; None for a record kind.

    Raises RuntimeError for a handed-off kind nobody registered (its app is not installed)."""
    from reconciliation.models import HandedOffKind

    if kind not in HandedOffKind.values:
        return None
    if kind not in _LOADERS:
        raise RuntimeError(f"no loader is registered for source kind {kind!r}")
    return _LOADERS[kind]
