"""CSV with the source's mapping, streamed: memory stays flat however long the file is.

A CSV has no trailer, so where the file ends is the only evidence that it arrived whole. The rule
(docs/ingestion.md, "Truncated files"): the file is rejected as ``truncated_file`` when

- a quoted field is still open at the end of the file (everything after its quote is unreadable);
- the last line has no line break (mapping ``last_line_break``: ``required``, the default): a file
  cut inside its last field is otherwise indistinguishable from a complete one — ``100.50`` cut to
  ``100`` is a valid amount. RFC 4180 lets a producer omit the last line break; a source whose
  producer does says ``last_line_break: optional``, and then a last line without one is still
  rejected when it has fewer columns than the header.

A file cut exactly at a line break is a well-formed shorter file: no format without a trailer or a
count can tell, so that is a producer's control (a trailer row, or a count in the file name).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from operator import itemgetter

from reconciliation.ingestion.kinds import loader_for
from reconciliation.ingestion.mapping import FIELDS, Normalization, validate_csv_mapping
from reconciliation.ingestion.parsers import STAGE_COLUMNS, FileRejected, Parsed, malformed, truncated

assert STAGE_COLUMNS[4 : 4 + len(FIELDS)] == FIELDS
_EXTERNAL_ID, _SIGN = FIELDS.index("external_id"), FIELDS.index("sign")


def parse_csv(stream, *, mapping: dict, kind: str) -> Parsed:
    normalization = validate_csv_mapping(mapping, kind)
    loader = loader_for(kind)
    # A handed-off kind's rows carry its own fields (kinds.py); a record's carry FIELDS.
    fields = loader.fields if loader is not None else FIELDS
    encoding = mapping.get("encoding", "utf-8")
    if codecs.lookup(encoding).name == "utf-8":
        encoding = "utf-8-sig"  # skip a byte-order mark
    text = io.TextIOWrapper(stream, encoding=encoding, newline="")
    columns = dict(mapping["columns"])
    sign = mapping.get("sign")
    if isinstance(sign, dict) and "sign" not in columns:
        columns["sign"] = sign["column"]
    break_required = mapping.get("last_line_break", "required") == "required"
    return Parsed(
        rows=_rows(text, mapping.get("delimiter", ","), columns, normalization, break_required, fields),
        format="csv",
        normalization=normalization,
    )


def _rows(text, delimiter: str, columns: dict, normalization: Normalization, break_required: bool, fields):
    try:
        yield from _read(text, delimiter, columns, normalization, break_required, fields)
    finally:
        # Hand the binary stream back open: the loader may read the file again (services._load).
        text.detach()


def _unterminated(line: str) -> bool:
    """Only the file's last line can lack a line break (text iteration splits at them)."""
    return not line.endswith(("\n", "\r"))


def _read(text, delimiter: str, columns: dict, normalization: Normalization, break_required: bool, fields):
    attribute_names = normalization.attributes
    consumed_lines: list[str] = []
    at_end = []  # [True] once the text is exhausted: a csv.Error then is a quote left open

    def physical_lines():
        for line in text:
            consumed_lines.append(line)
            yield line
        at_end.append(True)

    reader = csv.reader(physical_lines(), delimiter=delimiter, strict=True)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return
    except (UnicodeDecodeError, csv.Error) as exc:
        if at_end or getattr(exc, "reason", "") == "unexpected end of data":
            raise truncated(
                "the file ends inside its header line (a quote or a character left open)"
            ) from exc
        raise FileRejected("malformed_file", f"cannot read the CSV header: {exc}") from exc
    if break_required and _unterminated(consumed_lines[-1]):
        raise truncated("the header line has no line break and no row follows it")
    position = {name: i for i, name in enumerate(header)}
    key_columns = normalization.key_columns
    sign_columns = [rule.column for rule in normalization.sign_rules]
    # A composite key's external_id is a list: its columns are picked apart (pick_key below).
    single = {f: c for f, c in columns.items() if not (f == "external_id" and key_columns)}
    wanted = dict.fromkeys([*single.values(), *key_columns, *sign_columns, *attribute_names])
    missing = [c for c in wanted if c not in position]
    if missing:
        raise FileRejected("malformed_file", f"columns not in the header: {', '.join(missing)}")
    width = len(header)
    position[None] = width  # the sign slot's legacy column when the mapping has none (sign_slot)
    # Unmapped fields read index `width`: the "" appended to every row (SQL treats "" as absent).
    # A composite key's external_id slot and the rules' sign slot are filled from their own pickers.
    pick = itemgetter(*[position[single[f]] if f in single else width for f in fields])
    # Both pick two or more columns (a key has at least two), so itemgetter returns a tuple.
    pick_key = itemgetter(*[position[c] for c in key_columns]) if key_columns else None
    # The sign slot then carries (the legacy sign column's text or "", *each rule's side text).
    sign_slot = [columns.get("sign"), *sign_columns]
    pick_signs = itemgetter(*[position[c] for c in sign_slot]) if sign_columns else None
    pick_attributes = itemgetter(*[position[a] for a in attribute_names]) if attribute_names else None
    line_no = len(consumed_lines)
    consumed_lines.clear()
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError as exc:
            if exc.reason == "unexpected end of data":  # a multi-byte character cut at the end
                raise truncated(f"line {line_no + 1} ends inside a character") from exc
            raise FileRejected("malformed_file", f"line {line_no + 1}: not valid text: {exc}") from exc
        except csv.Error as exc:
            if at_end:  # strict mode: "unexpected end of data" inside a quoted field
                raise truncated(f"the quoted field opened on line {line_no + 1} is not closed") from exc
            raw = "".join(consumed_lines)
            first, line_no = line_no + 1, line_no + len(consumed_lines)
            consumed_lines.clear()
            yield malformed(first, raw.rstrip("\r\n"), f"not valid CSV: {exc}")
            continue
        lines = len(consumed_lines)
        last_line = consumed_lines[-1]
        raw = (consumed_lines[0] if lines == 1 else "".join(consumed_lines)).rstrip("\r\n")
        first, line_no = line_no + 1, line_no + lines
        consumed_lines.clear()
        if _unterminated(last_line):  # the last row of the file: was it cut?
            if break_required:
                raise truncated(f"line {line_no} (the last) has no line break")
            if len(fields) < width:
                raise truncated(
                    f"line {line_no} (the last) has {len(fields)} of the header's {width} columns"
                )
        if not fields:
            continue  # a blank line is not a row
        if len(fields) != width:
            yield malformed(first, raw, f"expected {width} columns, found {len(fields)}")
            continue
        attributes = None
        if pick_attributes is not None:
            values = pick_attributes(fields)
            values = values if len(attribute_names) > 1 else (values,)
            attributes = json.dumps(dict(zip(attribute_names, values, strict=True)))
        fields.append("")
        if pick_key is None and pick_signs is None:
            yield (first, raw, None, None, *pick(fields), attributes)
            continue
        values = list(pick(fields))
        if pick_key is not None:
            values[_EXTERNAL_ID] = pick_key(fields)
        if pick_signs is not None:
            values[_SIGN] = pick_signs(fields)
        yield (first, raw, None, None, *values, attributes)
