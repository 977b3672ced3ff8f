"""The report's charts, as SVG written by hand (no plotting library): each scenario against its
ceiling (svg_chart), and p99 against the dataset size when several sizes ran (svg_growth)."""

from __future__ import annotations

import math

from catalog import FIXED_RATE, SCENARIOS


def svg_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def svg_chart(report: dict) -> str:
    """Two panels per dataset: requests/s and p99 of each scenario (dark bar) over its ceiling
    (light bar), the figures written after the bars."""
    row_h, label_w, bar_w, text_w = 22, 130, 250, 170
    panel_w = bar_w + text_w
    parts, y = [], 10
    parts.append(f'<rect x="{label_w}" y="{y + 2}" width="14" height="10" fill="#2b5d9b"/>'
                 f'<text x="{label_w + 18}" y="{y + 11}" font-size="11">scenario</text>'
                 f'<rect x="{label_w + 90}" y="{y + 2}" width="14" height="10" fill="#c9d7ea"/>'
                 f'<text x="{label_w + 108}" y="{y + 11}" font-size="11">its ceiling (pgbench, or the '
                 f'constant body for cached scenarios), measured in the same run</text>')
    y += 22
    for d in report["datasets"]:
        rows = [(sc["name"], d["scenarios"][sc["name"]]) for sc in SCENARIOS if sc["name"] in d["scenarios"]]
        parts.append(f'<text x="10" y="{y + 14}" font-weight="bold">{d["products"]:,} products</text>')
        y += 22
        for panel, (title, key) in enumerate((("requests/s", "rps"), ("p99 latency, ms", "p99"))):
            x0 = label_w + panel * panel_w

            def val(r):
                if not r:
                    return 0
                return r["rps"] if key == "rps" else r["latency_us"]["p99"] / 1000
            top = max([max(val(r), val(r.get("ceiling"))) for _, r in rows] + [1e-9])
            parts.append(f'<text x="{x0}" y="{y + 10}" font-size="11" font-weight="bold">{title}</text>')
            for i, (name, r) in enumerate(rows):
                yy = y + 16 + i * row_h
                if panel == 0:
                    parts.append(f'<text x="{label_w - 8}" y="{yy + 14}" text-anchor="end">{svg_escape(name)}</text>')
                c = r.get("ceiling")
                wc = val(c) / top * bar_w if c else 0
                if c:
                    parts.append(f'<rect x="{x0}" y="{yy + 1}" width="{wc:.1f}" height="{row_h - 4}" fill="#c9d7ea"/>')
                w = val(r) / top * bar_w
                color = "#2b5d9b" if key == "rps" else "#b5542b"
                parts.append(f'<rect x="{x0}" y="{yy + 6}" width="{w:.1f}" height="{row_h - 14}" fill="{color}"/>')
                if key == "rps":
                    text = f"{r['rps']:,.0f}" + (f" of {c['rps']:,.0f} ({r['ratio'] * 100:.0f}%)"
                                                  if c and r.get("ratio") is not None else "")
                else:
                    text = f"{val(r):.2f}" + (f" (ceiling {val(c):.2f})" if c else "")
                parts.append(f'<text x="{x0 + max(w, wc) + 5:.1f}" y="{yy + 14}" font-size="10">{text}</text>')
        y += 16 + len(rows) * row_h + 14
    width = label_w + 2 * panel_w
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y}" '
            f'font-family="sans-serif" font-size="12">\n<rect width="100%" height="100%" fill="white"/>\n'
            + "\n".join(parts) + "\n</svg>\n")


def svg_growth(report: dict) -> str:
    """p99 (ms) of each scenario against the dataset size (log scale)."""
    ds = sorted(report["datasets"], key=lambda d: d["products"])
    w, h, left, bottom, top_pad = 640, 320, 60, 40, 30
    series = []
    for sc in SCENARIOS:
        pts = [(d["products"], d["scenarios"][sc["name"]]["latency_us"]["p99"] / 1000)
               for d in ds if sc["name"] in d["scenarios"]]
        series.append((sc["name"], pts))
    for fr in FIXED_RATE:
        for rate in report["args"]["rate"]:
            pts = [(d["products"], r["latency_us"]["p99"] / 1000) for d in ds for r in d["fixed_rate"]
                   if r["name"] == fr["name"] and r["rate"] == rate]
            series.append((f"{fr['name']} @ {rate}/s", pts))
    ymax = max([v for _, pts in series for _, v in pts] + [1]) * 1.1
    xs = [math.log10(d["products"]) for d in ds]
    xmin, xmax = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    pw, ph = w - left - 200, h - bottom - top_pad

    def X(n):
        return left + (math.log10(n) - xmin) / (xmax - xmin) * pw

    def Y(v):
        return top_pad + ph - v / ymax * ph
    colors = ["#2b5d9b", "#b5542b", "#3a8a3a", "#8a3a8a", "#c9a227", "#555", "#1aa", "#a11", "#77c", "#7c7"]
    parts = [f'<text x="{left}" y="18" font-weight="bold">p99 latency (ms) by dataset size</text>',
             f'<line x1="{left}" y1="{top_pad + ph}" x2="{left + pw}" y2="{top_pad + ph}" stroke="#000"/>',
             f'<line x1="{left}" y1="{top_pad}" x2="{left}" y2="{top_pad + ph}" stroke="#000"/>']
    for d in ds:
        parts.append(f'<text x="{X(d["products"]):.1f}" y="{top_pad + ph + 16}" text-anchor="middle" '
                     f'font-size="10">{d["products"]:,}</text>')
    for i in range(5):
        v = ymax * i / 4
        parts.append(f'<text x="{left - 6}" y="{Y(v) + 4:.1f}" text-anchor="end" font-size="10">{v:.1f}</text>')
    for i, (name, pts) in enumerate(series):
        col = colors[i % len(colors)]
        if pts:
            path = " ".join(f"{X(n):.1f},{Y(v):.1f}" for n, v in pts)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{col}" stroke-width="2"/>')
        parts.append(f'<rect x="{left + pw + 20}" y="{top_pad + i * 16}" width="10" height="10" fill="{col}"/>')
        parts.append(f'<text x="{left + pw + 34}" y="{top_pad + i * 16 + 9}" font-size="11">{svg_escape(name)}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" '
            f'font-size="12">\n<rect width="100%" height="100%" fill="white"/>\n' + "\n".join(parts) + "\n</svg>\n")
