"""A report document (reporting.reports.Report) as HTML (the admin page, the pack's summary) and
as PDF (fpdf2). Both deterministic: the same document gives the same bytes."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from decimal import Decimal
from html import escape

from fpdf import FPDF

from reporting.reports import GENERATOR_VERSION, Report

CSS = """
body{font-family:"DejaVu Sans",Arial,sans-serif;font-size:13px;color:#111;margin:16px}
table{border-collapse:collapse;margin:6px 0 18px}th,td{border:1px solid #bbb;padding:3px 8px;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#eef}
.finding{color:#b00000;font-weight:bold}.header th{background:#f6f6f6;width:10em}
figure{margin:8px 0 20px}svg{max-width:100%;height:auto}figcaption{font-weight:bold;margin-bottom:4px}
"""


def cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def report_body_html(report: Report) -> str:
    out = [f"<h1>{escape(report.title)}</h1>", '<table class="header">']
    out += [f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in report.header()]
    out.append("</table>")
    for finding in report.findings:
        out.append(f'<p class="finding">Finding: {escape(finding)}</p>')
    for note in report.notes:
        out.append(f"<p>{escape(note)}</p>")
    if report.links:
        out.append(
            "<p>" + " · ".join(f'<a href="{escape(u)}">{escape(lbl)}</a>' for lbl, u in report.links) + "</p>"
        )
    for title, svg in report.charts:
        out.append(f"<figure><figcaption>{escape(title)}</figcaption>{svg}</figure>")
    for table in report.tables:
        out.append(f"<h2>{escape(table.title)}</h2><table><tr>")
        out += [f"<th>{escape(c)}</th>" for c in table.columns]
        out.append("</tr>")
        if not table.rows:
            out.append(f'<tr><td colspan="{len(table.columns)}">(none)</td></tr>')
        for row in table.rows:
            cells = "".join(
                f'<td class="n">{escape(cell_text(v))}</td>'
                if isinstance(v, int | Decimal) and not isinstance(v, bool)
                else f"<td>{escape(cell_text(v))}</td>"
                for v in row
            )
            out.append(f"<tr>{cells}</tr>")
        out.append("</table>")
    return "\n".join(out)


def report_html(report: Report) -> str:
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{escape(report.title)}</title>'
        f"<style>{CSS}</style></head><body>{report_body_html(report)}</body></html>"
    )


def _latin1(text: str) -> str:
    # The PDF core fonts are Latin-1; anything else is shown as "?" rather than failing the report.
    return text.encode("latin-1", "replace").decode("latin-1")


class _Pdf(FPDF):
    def __init__(self, report: Report):
        super().__init__(orientation="L", unit="mm", format="A4")
        self.report = report
        self.set_creation_date(report.generated_at.astimezone(UTC))
        self.set_producer(GENERATOR_VERSION)
        self.set_title(_latin1(report.title))
        self.set_author(_latin1(report.generated_by))
        self.set_auto_page_break(auto=True, margin=12)

    def footer(self):
        self.set_y(-10)
        self.set_font("Helvetica", size=7)
        r = self.report
        self.cell(
            0,
            5,
            _latin1(
                f"{r.tenant} - {r.title} - generated {r.generated_at.isoformat()} - page {self.page_no()}"
            ),
        )


def report_pdf(report: Report) -> bytes:
    pdf = _Pdf(report)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 14)
    pdf.multi_cell(0, 7, _latin1(report.title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=9)
    for key, value in report.header():
        pdf.multi_cell(0, 5, _latin1(f"{key}: {value}"), new_x="LMARGIN", new_y="NEXT")
    for finding in report.findings:
        pdf.set_text_color(176, 0, 0)
        pdf.multi_cell(0, 5, _latin1(f"Finding: {finding}"), new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0, 0, 0)
    for note in report.notes:
        pdf.multi_cell(0, 5, _latin1(note), new_x="LMARGIN", new_y="NEXT")
    for title, svg in report.charts:
        pdf.ln(2)
        pdf.set_font("Helvetica", "B", 10)
        pdf.multi_cell(0, 6, _latin1(title), new_x="LMARGIN", new_y="NEXT")
        pdf.image(io.BytesIO(svg.encode()), w=min(260, pdf.epw))
    for table in report.tables:
        pdf.ln(3)
        pdf.set_font("Helvetica", "B", 10)
        pdf.multi_cell(0, 6, _latin1(table.title), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=7)
        with pdf.table(text_align="LEFT", first_row_as_headings=True, line_height=4) as grid:
            grid.row([_latin1(c) for c in table.columns])
            for row in table.rows or [["(none)", *[""] * (len(table.columns) - 1)]]:
                grid.row([_latin1(cell_text(v)) for v in row])
    return bytes(pdf.output())
