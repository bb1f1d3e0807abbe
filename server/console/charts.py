"""Server-side SVG charts: markup in the page, no script, no library."""

from __future__ import annotations

from markupsafe import Markup, escape

_ROW_H = 22
_LABEL_W = 180
_VALUE_W = 90


def stacked_bars(
    rows: list[tuple[str, float, float]], names: tuple[str, str], width: int = 720
) -> Markup:
    """Horizontal bars, one per (label, first part, second part), the parts stacked; the
    two part names head the legend. Text is escaped; the chart is labelled for readers."""
    bar_w = width - _LABEL_W - _VALUE_W
    top = max((a + b for _, a, b in rows), default=0) or 1
    height = _ROW_H * (len(rows) + 1) + 8
    title = f"{names[0]} and {names[1]} per group"
    parts = [
        f'<svg class="chart" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<rect x="{_LABEL_W}" y="4" width="12" height="12" class="bar-a"/>'
        f'<text x="{_LABEL_W + 18}" y="15">{escape(names[0])}</text>'
        f'<rect x="{_LABEL_W + 160}" y="4" width="12" height="12" class="bar-b"/>'
        f'<text x="{_LABEL_W + 178}" y="15">{escape(names[1])}</text>',
    ]
    for i, (label, a, b) in enumerate(rows, start=1):
        y = i * _ROW_H + 4
        wa, wb = bar_w * a / top, bar_w * b / top
        shown = label if len(label) <= 24 else label[:23] + "…"
        parts.append(
            f'<text x="{_LABEL_W - 8}" y="{y + 14}" text-anchor="end">{escape(shown)}</text>'
            f'<rect x="{_LABEL_W}" y="{y}" width="{wa:.1f}" height="16" class="bar-a"/>'
            f'<rect x="{_LABEL_W + wa:.1f}" y="{y}" width="{wb:.1f}" height="16" class="bar-b"/>'
            f'<text x="{_LABEL_W + wa + wb + 6:.1f}" y="{y + 14}">{a + b:g}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
