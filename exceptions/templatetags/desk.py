"""The admin index's desk summary: open cases by age bucket and type as an inline SVG bar chart."""

from django import template

from exceptions import selectors
from exceptions.models import BreakType
from jfintech.tenancy.selectors import tenants_for_user

register = template.Library()

COLOURS = {
    BreakType.MISSING_LEFT: "#c5221f",
    BreakType.MISSING_RIGHT: "#ea8600",
    BreakType.AMOUNT_MISMATCH: "#1a73e8",
    BreakType.QUANTITY_MISMATCH: "#12b5cb",
    BreakType.DATE_MISMATCH: "#9334e6",
    BreakType.DUPLICATE: "#e52592",
    BreakType.POSITION_BREAK: "#188038",
    BreakType.RUN_FAILED: "#3c4043",
    BreakType.DELIVERY_FAILED: "#5f6368",
}
LABEL_W, BAR_W, ROW_H = 90, 420, 28


def bar_chart(summary: dict) -> dict:
    buckets = list(selectors.AGE_BUCKETS)
    totals = dict(summary["by_bucket"])
    peak = max(totals.values(), default=0) or 1
    bars = []
    for i, bucket in enumerate(buckets):
        x, segments = LABEL_W, []
        for row in summary["by_bucket_type"]:
            n = row["buckets"][i]
            if n:
                w = max(1, round(BAR_W * n / peak))
                segments.append(
                    {
                        "type": row["break_type"],
                        "n": n,
                        "x": x,
                        "w": w,
                        "colour": COLOURS.get(row["break_type"], "#888"),
                    }
                )
                x += w
        bars.append(
            {
                "bucket": bucket,
                "label": f"{bucket} days",
                "y": i * ROW_H,
                "segments": segments,
                "total": totals[bucket],
                "end": x,
            }
        )
    # The legend is HTML below the chart (it wraps, so no label is ever cut), with readable names.
    legend = [
        {
            "type": row["break_type"],
            "label": _label(row["break_type"]),
            "colour": COLOURS.get(row["break_type"], "#888"),
        }
        for row in summary["by_bucket_type"]
    ]
    width = LABEL_W + BAR_W + 60
    return {"bars": bars, "legend": legend, "width": width, "height": len(buckets) * ROW_H}


def _label(break_type: str) -> str:
    try:
        return BreakType(break_type).label
    except ValueError:  # a type this code does not know yet: its code, readable
        return break_type.replace("_", " ")


@register.inclusion_tag("admin/exceptions/desk_glance.html", takes_context=True)
def desk_at_a_glance(context):
    request = context.get("request")
    if request is None or not getattr(request.user, "is_staff", False):
        return {"glance": None}
    tenants = list(tenants_for_user(request.user))
    if not tenants:
        return {"glance": None}
    summary = selectors.desk_summary(tenants=tenants)
    return {"glance": summary, "chart": bar_chart(summary), "request": request}
