"""CSV with the source's mapping, streamed: memory stays flat however long the file is."""

from __future__ import annotations

import codecs
import csv
import io
import json
from operator import itemgetter

from reconciliation.ingestion.mapping import FIELDS, validate_csv_mapping
from reconciliation.ingestion.parsers import STAGE_COLUMNS, FileRejected, Parsed, malformed

assert STAGE_COLUMNS[4 : 4 + len(FIELDS)] == FIELDS


def parse_csv(stream, *, mapping: dict, kind: str) -> Parsed:
    normalization = validate_csv_mapping(mapping, kind)
    encoding = mapping.get("encoding", "utf-8")
    if codecs.lookup(encoding).name == "utf-8":
        encoding = "utf-8-sig"  # skip a byte-order mark
    text = io.TextIOWrapper(stream, encoding=encoding, newline="")
    columns = dict(mapping["columns"])
    sign = mapping.get("sign")
    if isinstance(sign, dict) and "sign" not in columns:
        columns["sign"] = sign["column"]
    return Parsed(
        rows=_rows(text, mapping.get("delimiter", ","), columns, normalization.attributes),
        format="csv",
        normalization=normalization,
    )


def _rows(text, delimiter: str, columns: dict, attribute_names: tuple):
    try:
        yield from _read(text, delimiter, columns, attribute_names)
    finally:
        # Hand the binary stream back open: the loader may read the file again (services._load).
        text.detach()


def _read(text, delimiter: str, columns: dict, attribute_names: tuple):
    consumed_lines: list[str] = []

    def physical_lines():
        for line in text:
            consumed_lines.append(line)
            yield line

    reader = csv.reader(physical_lines(), delimiter=delimiter, strict=True)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return
    except (UnicodeDecodeError, csv.Error) as exc:
        raise FileRejected("malformed_file", f"cannot read the CSV header: {exc}") from exc
    position = {name: i for i, name in enumerate(header)}
    wanted = list(columns.values()) + list(attribute_names)
    missing = [c for c in wanted if c not in position]
    if missing:
        raise FileRejected("malformed_file", f"columns not in the header: {', '.join(missing)}")
    width = len(header)
    # Unmapped fields read index `width`: the "" appended to every row (SQL treats "" as absent).
    pick = itemgetter(*[position[columns[f]] if f in columns else width for f in FIELDS])
    pick_attributes = itemgetter(*[position[a] for a in attribute_names]) if attribute_names else None
    line_no = len(consumed_lines)
    consumed_lines.clear()
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError as exc:
            raise FileRejected("malformed_file", f"line {line_no + 1}: not valid text: {exc}") from exc
        except csv.Error as exc:
            raw = "".join(consumed_lines)
            first, line_no = line_no + 1, line_no + len(consumed_lines)
            consumed_lines.clear()
            yield malformed(first, raw.rstrip("\r\n"), f"not valid CSV: {exc}")
            continue
        lines = len(consumed_lines)
        raw = (consumed_lines[0] if lines == 1 else "".join(consumed_lines)).rstrip("\r\n")
        first, line_no = line_no + 1, line_no + lines
        consumed_lines.clear()
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
        yield (first, raw, None, None, *pick(fields), attributes)
