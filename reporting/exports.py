"""Exports of lists as CSV and XLSX, streamed: rows come from a server-side cursor (a queryset's
``.iterator()``), CSV goes out chunk by chunk, XLSX is written by xlsxwriter in constant-memory
mode (one row in memory) to a temporary file that is then streamed. A 1M-row export never holds
the rows (bench/reporting.py measures rows/s and peak RSS at 100k and 1M).

Every export starts with what it is: tenant, filters, generation time and user, data as-of
(CSV: ``# key: value`` lines before the header; XLSX: an "About" sheet before the data).

Formula injection: a text cell beginning with ``= + - @`` TAB or CR is prefixed with ``'`` so a
spreadsheet shows it as text instead of evaluating it. Numbers (counts, minor units, negative
amounts included) are numbers, not text, and are written as they are.
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal

import xlsxwriter

from exceptions import selectors as cases
from reporting.money import minor_units
from reporting.render import cell_text

DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value):
    if isinstance(value, str) and value.startswith(DANGEROUS):
        return "'" + value
    return value


def _csv_cell(value) -> str:
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return cell_text(value)
    return neutralise(cell_text(value))


def csv_stream(meta: list[tuple[str, str]], columns: list[str], rows: Iterable[list]) -> Iterator[bytes]:
    """CSV bytes in chunks of about 64 KB."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for key, value in meta:
        writer.writerow([neutralise(f"# {key}: {value}")])
    writer.writerow([neutralise(c) for c in columns])
    for row in rows:
        writer.writerow([_csv_cell(v) for v in row])
        if buffer.tell() > 65536:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def xlsx_file(meta: list[tuple[str, str]], columns: list[str], rows: Iterable[list], *, created: datetime):
    """A temporary file (rewound) holding the workbook; the caller streams and closes it."""
    out = tempfile.TemporaryFile()  # noqa: SIM115 (returned open: the response streams and closes it)
    workbook = xlsxwriter.Workbook(
        out, {"constant_memory": True, "remove_timezone": True, "strings_to_formulas": False}
    )
    workbook.set_properties({"created": created.replace(tzinfo=None), "comments": "jfintech reporting"})
    about = workbook.add_worksheet("About")
    for i, (key, value) in enumerate(meta):
        about.write_string(i, 0, key)
        about.write_string(i, 1, neutralise(str(value)))
    sheet = workbook.add_worksheet("Data")
    bold = workbook.add_format({"bold": True})
    for c, name in enumerate(columns):
        sheet.write_string(0, c, name, bold)
    for r, row in enumerate(rows, start=1):
        for c, value in enumerate(row):
            if value is None:
                continue
            if isinstance(value, bool):
                sheet.write_boolean(r, c, value)
            elif isinstance(value, int):
                sheet.write_number(r, c, value)
            elif isinstance(value, Decimal):
                # A spreadsheet number is a double: exact for minor units below 2**53; a larger
                # or fractional figure is written as text, so no digit is ever lost.
                if value == value.to_integral_value() and abs(value) < 2**53:
                    sheet.write_number(r, c, int(value))
                else:
                    sheet.write_string(r, c, format(value, "f"))
            elif isinstance(value, datetime | date):
                sheet.write_string(r, c, value.isoformat())
            else:
                sheet.write_string(r, c, neutralise(str(value)))
    workbook.close()
    out.seek(0)
    return out


# --- The lists ----------------------------------------------------------------------------------

CASE_COLUMNS = [
    "case",
    "break type",
    "status",
    "priority",
    "currency",
    "amount at stake (minor units)",
    "reference",
    "account",
    "definition",
    "assignee",
    "root cause",
    "first seen",
    "SLA due",
]


def case_rows(*, tenant, status=None, definition_id=None, chunk_size: int = 5000) -> Iterator[list]:
    """The break (case) list, one row at a time from a server-side cursor."""
    qs = cases.case_export_rows(tenant=tenant, status=status, definition_id=definition_id)
    amount_at = cases.CASE_EXPORT_COLUMNS.index("amount_at_stake")
    currency_at = cases.CASE_EXPORT_COLUMNS.index("currency")
    for row in qs.iterator(chunk_size=chunk_size):
        row = list(row)
        row[amount_at] = minor_units(row[amount_at], row[currency_at])
        yield row
