"""Which of a record's candidate references becomes its matching ``reference``.

Bank statements carry several references per entry, and the one the ledger knows is often not the
one the parser picks: about half of SEPA credits say ``EndToEndId`` = ``NOTPROVIDED`` and carry the
invoice number only in the remittance text. Every statement parser keeps an entry's candidates in
``attributes["references"]`` (names per format in ``CANDIDATES``), and a source's mapping may
declare an ordered list of extractors (docs/config-file.md, "Reference extractors")::

    "reference_extractors": [
      {"field": "end_to_end_id"},
      {"field": "remittance", "regex": "(?P<ref>INV-\\d{4}-\\d{4})"},
      {"field": "account_servicer_ref"}
    ]

The first extractor that yields a value wins: a ``field`` alone takes that candidate; with a
``regex`` it takes the named group ``ref`` of the regex's first match in the candidate. Empty,
``NOTPROVIDED`` and ``NONREF`` (any case) are absent: the next extractor is tried. The record keeps
which one won in ``attributes["reference_from"]`` (shown on the case page); when none yields, the
reference is empty (blank keys never match) and ``reference_from`` is absent. Without extractors
the parser's reference stands, as before.

A CSV source may use them too: its candidates are its mapped text fields and attribute columns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from jfintech.common.errors import ApplicationError
from reconciliation.ingestion.parsers import STAGE_COLUMNS

MAPPING_KEY = "reference_extractors"
ABSENT = frozenset({"", "notprovided", "nonref"})
# A regex runs over at most this much of a candidate: a remittance is 140 characters (camt Ustrd,
# several of them at most a few hundred), an MT940 :86: 390; this bounds a careless pattern's cost.
MAX_TEXT = 2000
_CAMT = (
    "end_to_end_id", "instruction_id", "transaction_id", "uetr", "account_servicer_ref",
    "creditor_reference", "remittance", "additional_info",
)  # fmt: skip
_SWIFT = ("customer_reference", "bank_reference", "end_to_end_id", "remittance")
CANDIDATES: dict[str, tuple[str, ...]] = {
    "camt053": _CAMT,
    "camt054": _CAMT,
    "mt940": _SWIFT,
    "bai2": ("customer_reference", "bank_reference", "remittance"),
}
# A CSV row's text fields that may serve as candidates (besides its attribute columns).
CSV_TEXT_FIELDS = ("external_id", "reference", "counterparty", "description", "account", "instrument")
_REFERENCE = STAGE_COLUMNS.index("reference")
_PARSE_ERROR = STAGE_COLUMNS.index("parse_error")
_CSV_POSITIONS = {name: STAGE_COLUMNS.index(name) for name in CSV_TEXT_FIELDS}


def present(value) -> str | None:
    """The value as a reference, or None when it says there is none."""
    if value is None:
        return None
    text = str(value).strip()
    return None if text.casefold() in ABSENT else text


@dataclass(frozen=True)
class Extractor:
    field: str
    regex: re.Pattern | None = None

    @property
    def label(self) -> str:
        """What the case page shows: ``remittance /(?P<ref>INV-\\d+)/`` or ``end_to_end_id``."""
        return f"{self.field} /{self.regex.pattern}/" if self.regex else self.field

    def extract(self, candidates: dict) -> str | None:
        value = candidates.get(self.field)
        if value is None or self.regex is None:
            return present(value)
        match = self.regex.search(str(value)[:MAX_TEXT])
        return present(match.group("ref")) if match else None


def extract(extractors: Iterable[Extractor], candidates: dict) -> tuple[str, str] | None:
    """(reference, label of the extractor that found it) from the first that yields, else None."""
    for extractor in extractors:
        value = extractor.extract(candidates)
        if value is not None:
            return value, extractor.label
    return None


def _invalid(path: str, message: str) -> ApplicationError:
    return ApplicationError(f"{path}: {message}", code="invalid_mapping", extra={"path": path})


def parse_extractors(spec, *, known: Iterable[str]) -> tuple[Extractor, ...]:
    """Validate ``mapping.reference_extractors`` against the format's candidate names."""
    path = f"mapping.{MAPPING_KEY}"
    known = tuple(known)
    if not isinstance(spec, list) or not spec:
        raise _invalid(path, "a non-empty list of {field} or {field, regex}")
    extractors = []
    for i, item in enumerate(spec):
        where = f"{path}[{i}]"
        if not isinstance(item, dict) or not set(item) <= {"field", "regex"} or "field" not in item:
            raise _invalid(where, "must be {field} or {field, regex} (no other keys)")
        field = item["field"]
        if field not in known:
            raise _invalid(
                f"{where}.field", f"unknown candidate field {field!r} (known: {', '.join(known) or 'none'})"
            )
        pattern = item.get("regex")
        regex = None
        if pattern is not None:
            if not isinstance(pattern, str) or not pattern:
                raise _invalid(f"{where}.regex", "must be a non-empty string")
            try:
                regex = re.compile(pattern)
            except re.error as exc:
                raise _invalid(f"{where}.regex", f"not a valid regular expression: {exc}") from exc
            if "ref" not in regex.groupindex:
                raise _invalid(
                    f"{where}.regex", "needs a named group ref, e.g. (?P<ref>INV-\\d+), for the reference"
                )
        extractors.append(Extractor(field, regex))
    return tuple(extractors)


def csv_candidate_names(mapping: dict) -> tuple[str, ...]:
    columns = mapping.get("columns") or {}
    # A composite external_id (a list of columns) exists only once the validator derives it, after
    # the extractors ran: not a candidate (its columns' mapped fields are).
    composite = isinstance(columns.get("external_id"), list)
    return tuple(
        f for f in CSV_TEXT_FIELDS if f in columns and not (composite and f == "external_id")
    ) + tuple(mapping.get("attributes") or ())


def validate(mapping: dict, fmt: str) -> tuple[Extractor, ...]:
    """The source's extractors (empty: none declared); raises invalid_mapping with the path."""
    if MAPPING_KEY not in mapping:
        return ()
    if fmt == "csv":
        known = csv_candidate_names(mapping)
    elif fmt in CANDIDATES:
        known = CANDIDATES[fmt]
    else:
        raise _invalid(f"mapping.{MAPPING_KEY}", f"not available for {fmt} sources")
    return parse_extractors(mapping[MAPPING_KEY], known=known)


def _candidates(row: tuple, attributes: dict) -> dict:
    references = attributes.get("references")
    if isinstance(references, dict):  # a statement format
        return references
    # A CSV row: its text fields, then its attribute columns.
    return {name: row[i] for name, i in _CSV_POSITIONS.items()} | attributes


def apply(rows: Iterator[tuple], mapping: dict) -> Iterator[tuple]:
    """The rows with the reference the extractors derive (unchanged when none are declared).

    Names are checked against every format here (a source on ``auto`` may receive another format
    than its own): a candidate a format does not have is simply absent.
    """
    spec = (mapping or {}).get(MAPPING_KEY)
    if not spec:
        return rows
    extractors = parse_extractors(spec, known=_ALL_NAMES + csv_candidate_names(mapping))
    return _apply(rows, extractors)


_ALL_NAMES = tuple(dict.fromkeys(name for names in CANDIDATES.values() for name in names))


def _apply(rows: Iterator[tuple], extractors: tuple[Extractor, ...]) -> Iterator[tuple]:
    for row in rows:
        if row[_PARSE_ERROR] is not None:
            yield row
            continue
        attributes = json.loads(row[-1]) if row[-1] else {}
        found = extract(extractors, _candidates(row, attributes))
        reference = ""
        if found is not None:
            reference, attributes["reference_from"] = found
        yield (*row[:_REFERENCE], reference, *row[_REFERENCE + 1 : -1], json.dumps(attributes))
