"""JSON records: a list of objects (pushed through the API, or pulled from an upstream endpoint).

Each object names record fields directly (``external_id``, ``business_date`` as YYYY-MM-DD,
``amount`` as a string or a number, ``currency``, …) plus an optional ``attributes`` object.
Numbers are parsed as Decimal, never float.

A source whose mapping declares a composite key (``columns.external_id`` a list, mapping.py)
gets its records' external_id derived from those fields, as for its CSV files; such a record
must not carry an external_id of its own (two ids for one row would be ambiguous).
"""

from __future__ import annotations

import json
from decimal import Decimal

from jfintech.common import inputs
from jfintech.common.errors import ApplicationError
from reconciliation.ingestion.kinds import loader_for
from reconciliation.ingestion.mapping import FIELDS, ISO, Normalization, json_normalization
from reconciliation.ingestion.parsers import FileRejected, Parsed, malformed, truncated

_EXTERNAL_ID = FIELDS.index("external_id")


def load_json_document(data: bytes) -> list:
    try:
        document = json.loads(data, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        # The input ended before the document did: an error at the end, or a string never closed
        # (JSON strings hold no raw line breaks, so an open one runs to the end of the input).
        if exc.pos >= len(exc.doc.rstrip()) or exc.msg.startswith("Unterminated string"):
            raise truncated(f"the JSON document ends before it is complete ({exc})") from exc
        raise FileRejected("malformed_file", f"not valid JSON: {exc}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise FileRejected("malformed_file", f"not valid JSON: {exc}") from exc
    records = document.get("records") if isinstance(document, dict) else document
    if not isinstance(records, list):
        raise FileRejected("malformed_file", 'expected a JSON list of records or {"records": [...]}')
    return records


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _rows(
    records: list, normalization: Normalization, fields: tuple[str, ...] = FIELDS, attributes_allowed=True
):
    key_fields = normalization.key_columns
    allowed = {*fields, "attributes"} if attributes_allowed else set(fields)
    for number, record in enumerate(records, start=1):
        raw = json.dumps(record, default=str)
        if not isinstance(record, dict):
            yield malformed(number, raw, "a record must be a JSON object")
            continue
        try:  # a NUL byte (in a field name too) would reach COPY; PostgreSQL text cannot hold it
            inputs.check(record, "record")
        except inputs.HostileInput as exc:
            yield malformed(number, raw, str(exc))
            continue
        unknown = set(record) - allowed
        if unknown:
            yield malformed(number, raw, f"unknown fields: {', '.join(sorted(unknown))}")
            continue
        attributes = record.get("attributes")
        if attributes is not None and not isinstance(attributes, dict):
            yield malformed(number, raw, "attributes must be a JSON object")
            continue
        values = [_text(record.get(f)) for f in fields]
        if key_fields:
            if values[_EXTERNAL_ID] is not None:
                yield malformed(
                    number, raw, f"external_id is derived from the {normalization.key_label} for this"
                    " source; a record must not carry its own",
                )  # fmt: skip
                continue
            values[_EXTERNAL_ID] = tuple(_text(record.get(f)) for f in key_fields)
        yield (number, raw, None, None, *values, json.dumps(attributes, default=str) if attributes else None)


def parse_json_records(records: list, mapping: dict | None = None, kind: str = "") -> Parsed:
    """``mapping``: the source's, for a composite key (a key that names no record field rejects
    the delivery, invalid_mapping: a CSV source's key columns must be mapped to fields).
    ``kind``: the source's; a handed-off kind's records name its own fields (kinds.py)."""
    loader = loader_for(kind)
    if loader is not None:
        return Parsed(rows=_rows(records, ISO, loader.fields, attributes_allowed=False), format="json")
    try:
        normalization: Normalization = json_normalization(mapping or {})
    except ApplicationError as exc:
        raise FileRejected("invalid_mapping", f"the source's mapping: {exc.message}") from exc
    return Parsed(rows=_rows(records, normalization), format="json", normalization=normalization)
