"""Server-rendered SVG charts: no JavaScript, no CDN, the same bytes on screen, in a PDF's pack and
in a screenshot.

Colours are the Okabe-Ito palette (distinguishable with the common colour-vision deficiencies),
and each series also has its own dash pattern or is named in the legend beside its swatch, so
colour is never the only cue. Labels are never truncated: the margins and the width grow with
the longest label (measured with a conservative per-character width) and category labels are
rotated, not clipped.
"""

from __future__ import annotations

from html import escape

OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
DASHES = ["", "6 3", "2 3", "8 3 2 3", "1 2", "10 4", "4 4", "3 6"]
CHAR_W = 7.5  # px per character at font-size 12 (generous: a label must never overflow)
FONT = 'font-family="DejaVu Sans, Arial, sans-serif" font-size="12"'


def _text_w(text: str) -> float:
    return len(text) * CHAR_W


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def _frame(categories, series_names, y_max, y_label, x_label, plot_w):
    left = 20 + max([_text_w(f"{y_max:g}"), 30]) + 24
    rotate = max((_text_w(c) for c in categories), default=0)
    bottom = 30 + rotate * 0.72 + (20 if x_label else 0)  # 45° labels: height ≈ width·sin45
    legend_w = max((_text_w(n) for n in series_names), default=0) + 40
    height = 260
    width = left + plot_w + 30 + legend_w
    return left, bottom, height, width, legend_w


def _axes(left, top, plot_w, plot_h, y_max, y_label) -> list[str]:
    out = []
    for i in range(5):
        value = y_max * i / 4
        y = top + plot_h - plot_h * i / 4
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" {FONT}>{value:g}</text>')
    out.append(
        f'<text transform="translate(14 {top + plot_h / 2:.1f}) rotate(-90)" text-anchor="middle" {FONT}>'
        f"{escape(y_label)}</text>"
    )
    out.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#333"/>'
    )
    out.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#333"/>')
    return out


def _x_labels(categories, xs, y) -> list[str]:
    return [
        f'<text transform="translate({x:.1f} {y + 14:.1f}) rotate(-45)" text-anchor="end" {FONT}>'
        f"{escape(str(c))}</text>"
        for c, x in zip(categories, xs, strict=True)
    ]


def _legend(names, x, top, kind) -> list[str]:
    out = []
    for i, name in enumerate(names):
        y = top + 10 + i * 20
        colour, dash = OKABE_ITO[i % 8], DASHES[i % 8]
        if kind == "line":
            out.append(
                f'<line x1="{x}" y1="{y}" x2="{x + 24}" y2="{y}" stroke="{colour}" stroke-width="3" '
                f'stroke-dasharray="{dash}"/>'
            )
        else:
            out.append(f'<rect x="{x}" y="{y - 7}" width="24" height="14" fill="{colour}"/>')
        out.append(f'<text x="{x + 30}" y="{y + 4}" {FONT}>{escape(name)}</text>')
    return out


def _svg(width, height, body, title) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img"><title>{escape(title)}</title>'
        f'<rect width="100%" height="100%" fill="#fff"/>{"".join(body)}</svg>'
    )


def stacked_bars(
    categories: list[str], series: dict[str, dict[str, int]], *, y_label: str, x_label: str = ""
) -> str:
    """One bar per category, stacked by series (e.g. age buckets stacked by break type)."""
    names = sorted(series)
    totals = [sum(series[n].get(c, 0) for n in names) for c in categories]
    y_max = _nice_max(max(totals, default=0))
    slot = max(48, max((_text_w(c) * 0.5 for c in categories), default=0))
    plot_w = slot * max(len(categories), 1)
    left, bottom, plot_h, width, _ = _frame(categories, names, y_max, y_label, x_label, plot_w)
    top = 16
    height = top + plot_h + bottom
    body = _axes(left, top, plot_w, plot_h, y_max, y_label)
    xs = []
    for ci, category in enumerate(categories):
        x = left + ci * slot + slot * 0.2
        xs.append(x + slot * 0.3)
        y = top + plot_h
        for i, name in enumerate(names):
            value = series[name].get(category, 0)
            if not value:
                continue
            h = plot_h * value / y_max
            y -= h
            body.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.6:.1f}" height="{h:.1f}" '
                f'fill="{OKABE_ITO[i % 8]}" stroke="#fff">'
                f"<title>{escape(name)} {escape(category)}: {value}</title></rect>"
            )
        body.append(
            f'<text x="{x + slot * 0.3:.1f}" y="{y - 4:.1f}" text-anchor="middle" {FONT}>{totals[ci]}</text>'
        )
    body += _x_labels(categories, xs, top + plot_h)
    if x_label:
        body.append(
            f'<text x="{left + plot_w / 2:.1f}" y="{height - 6:.1f}" text-anchor="middle" {FONT}>'
            f"{escape(x_label)}</text>"
        )
    body += _legend(names, left + plot_w + 30, top, "bar")
    height = max(height, top + 20 * len(names) + 30)
    return _svg(width, height, body, f"{y_label} per {x_label or 'category'}")


def lines(categories: list[str], series: dict[str, list], *, y_label: str) -> str:
    """One line per series over the categories (None: no point)."""
    names = list(series)
    # Pixel positions only: the figures themselves are in the report's tables, exact.
    series = {n: [None if v is None else float(v) for v in vs] for n, vs in series.items()}
    values = [v for vs in series.values() for v in vs if v is not None]
    y_max = _nice_max(max(values, default=0))
    slot = 36
    plot_w = slot * max(len(categories), 1)
    left, bottom, plot_h, width, _ = _frame(categories, names, y_max, y_label, "", plot_w)
    top = 16
    height = max(top + plot_h + bottom, top + 20 * len(names) + 30)
    body = _axes(left, top, plot_w, plot_h, y_max, y_label)
    xs = [left + slot * (i + 0.5) for i in range(len(categories))]
    for i, name in enumerate(names):
        points = [
            (x, top + plot_h - plot_h * v / y_max)
            for x, v in zip(xs, series[name], strict=True)
            if v is not None
        ]
        colour, dash = OKABE_ITO[i % 8], DASHES[i % 8]
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            body.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2.5" '
                f'stroke-dasharray="{dash}"/>'
            )
        for x, y in points:
            body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>')
    body += _x_labels(categories, xs, top + plot_h)
    body += _legend(names, left + plot_w + 30, top, "line")
    return _svg(width, height, body, y_label)


def waterfall(
    start: tuple[str, float],
    steps: list[tuple[str, float]],
    end_label: str,
    *,
    y_label: str,
    compare: tuple[str, float] | None = None,
) -> str:
    """From a starting balance, one floating bar per step (up: blue, down: vermillion, each also
    labelled with its signed value), to the resulting balance; ``compare`` is drawn beside it."""
    bars = [(start[0], 0.0, float(start[1]), "total")]
    running = float(start[1])
    for label, value in steps:
        bars.append((label, running, running + float(value), "up" if value >= 0 else "down"))
        running += float(value)
    bars.append((end_label, 0.0, running, "total"))
    if compare is not None:
        bars.append((compare[0], 0.0, float(compare[1]), "compare"))
    low = min(0.0, *(min(a, b) for _, a, b, _ in bars))
    high = max(0.0, *(max(a, b) for _, a, b, _ in bars))
    span = _nice_max(high - low) or 1
    labels = [b[0] for b in bars]
    slot = max(70, max(_text_w(lbl) * 0.55 for lbl in labels))
    plot_w = slot * len(bars)
    left, bottom, plot_h, width, _ = _frame(labels, [], span, y_label, "", plot_w)
    left = 20 + max(_text_w(f"{high:,.0f}"), _text_w(f"{low:,.0f}"), 30) + 24
    width = left + plot_w + 30
    top = 20
    height = top + plot_h + bottom
    y = lambda v: top + plot_h - plot_h * (v - low) / span  # noqa: E731
    colours = {"total": "#000000", "up": OKABE_ITO[0], "down": OKABE_ITO[3], "compare": OKABE_ITO[2]}
    body = [f'<line x1="{left}" y1="{y(0):.1f}" x2="{left + plot_w}" y2="{y(0):.1f}" stroke="#333"/>']
    for i in range(5):
        v = low + span * i / 4
        body.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end" {FONT}>{v:,.0f}</text>')
        body.append(f'<line x1="{left}" y1="{y(v):.1f}" x2="{left + plot_w}" y2="{y(v):.1f}" stroke="#eee"/>')
    body.append(
        f'<text transform="translate(14 {top + plot_h / 2:.1f}) rotate(-90)" text-anchor="middle" {FONT}>'
        f"{escape(y_label)}</text>"
    )
    xs = []
    for i, (label, a, b, kind) in enumerate(bars):
        x = left + i * slot + slot * 0.15
        xs.append(x + slot * 0.35)
        y0, y1 = sorted((y(a), y(b)))
        body.append(
            f'<rect x="{x:.1f}" y="{y0:.1f}" width="{slot * 0.7:.1f}" height="{max(y1 - y0, 1):.1f}" '
            f'fill="{colours[kind]}"><title>{escape(label)}: {b - a:,.2f}</title></rect>'
        )
        value = b - a if kind in ("up", "down") else b
        sign = "+" if kind == "up" else ""
        body.append(
            f'<text x="{x + slot * 0.35:.1f}" y="{y0 - 4:.1f}" text-anchor="middle" {FONT}>'
            f"{sign}{value:,.0f}</text>"
        )
    body += _x_labels(labels, xs, top + plot_h)
    return _svg(width, height, body, y_label)
