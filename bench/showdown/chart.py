"""chart.svg, drawn by hand (no plotting library): four panels of grouped bars on log scales, each bar
labelled with its value and its comparison with the Node baseline. Pure: results in, SVG text out."""

from __future__ import annotations

import math

from .common import fmt_bytes, fmt_num
from .contenders import BASELINE, COLORS, label, present


# chart: hand-written SVG, four panels of grouped bars on log scales


def esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def chart_svg(r) -> str:
    s = r["summary"]
    tp = s["throughput"].get("valid@16", {})
    names = present(s["cold_start_ms"])
    panels = [
        ("Cold start", "ms, median — lower is better", {c: s["cold_start_ms"][c]["median"] for c in names},
         lambda x: f"{fmt_num(x)} ms"),
        ("Idle memory (RSS)", "MiB — lower is better", {c: s["idle_rss_mib"][c] for c in names},
         lambda x: f"{fmt_num(x)} MiB"),
        ("Artifact size", "bytes, runtimes not counted — lower is better", {c: s["size_bytes"].get(c) for c in names}, fmt_bytes),
        ("Throughput", "req/s, valid token, 16 conns — higher is better",
         {c: tp.get(c, {}).get("rps") for c in names}, lambda x: f"{x:,.0f}/s"),
    ]
    W, H = 1200, 480
    pw, ph = 250, 270  # plot area per panel
    left0, top = 60, 135
    gap = 285
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
           f'font-family="Helvetica, Arial, sans-serif">',
           f'<rect width="{W}" height="{H}" fill="#ffffff"/>',
           f'<text x="20" y="30" font-size="20" font-weight="bold">jwt-validator showdown: node vs native vs wasm</text>',
           f'<text x="20" y="52" font-size="12" fill="#555">{esc(r["environment"]["cpu_model"])}, '
           f'{r["environment"]["cores"]} cores shared with the load generator · {esc(r["mode"])} run {esc(r["started_at"])} · '
           f'log scales; under each bar: compared with node</text>']
    # legend
    lx = 20
    for c in names:
        out.append(f'<rect x="{lx}" y="66" width="14" height="14" fill="{COLORS[c]}"/>')
        out.append(f'<text x="{lx + 20}" y="78" font-size="13">{esc(label(c))}</text>')
        lx += 30 + 8 * len(label(c)) + 20
    for i, (title, unit, vals, fmt) in enumerate(panels):
        x0 = left0 + i * gap
        y0 = top
        shown = [v for v in vals.values() if v]
        out.append(f'<text x="{x0}" y="{y0 - 14}" font-size="15" font-weight="bold">{esc(title)}</text>')
        out.append(f'<text x="{x0}" y="{y0 + ph + 62}" font-size="11" fill="#555">{esc(unit)}</text>')
        if not shown:
            continue
        lo = 10 ** math.floor(math.log10(min(shown)) - 0.5)  # every bar at least half a decade tall
        hi = 10 ** math.ceil(math.log10(max(shown) * 1.0001))
        if hi / lo < 100:
            lo = hi / 100
        span = math.log10(hi) - math.log10(lo)

        def y(v):
            return y0 + ph - (math.log10(v) - math.log10(lo)) / span * ph

        # decade grid lines
        d = lo
        while d <= hi * 1.0001:
            yy = y(d)
            out.append(f'<line x1="{x0}" y1="{yy:.1f}" x2="{x0 + pw}" y2="{yy:.1f}" stroke="#e3e3e3"/>')
            out.append(f'<text x="{x0 - 6}" y="{yy + 4:.1f}" font-size="10" fill="#777" text-anchor="end">{esc(tick(d))}</text>')
            d *= 10
        out.append(f'<line x1="{x0}" y1="{y0 + ph}" x2="{x0 + pw}" y2="{y0 + ph}" stroke="#333"/>')
        bw = pw / len(names) * 0.7
        for j, c in enumerate(names):
            v = vals.get(c)
            bx = x0 + j * pw / len(names) + (pw / len(names) - bw) / 2
            if not v:
                out.append(f'<text x="{bx + bw / 2:.1f}" y="{y0 + ph - 4}" font-size="10" text-anchor="middle">n/a</text>')
                continue
            yy = y(v)
            out.append(f'<rect x="{bx:.1f}" y="{yy:.1f}" width="{bw:.1f}" height="{y0 + ph - yy:.1f}" fill="{COLORS[c]}">'
                       f'<title>{esc(label(c))}: {esc(fmt(v))}</title></rect>')
            out.append(f'<text x="{bx + bw / 2:.1f}" y="{yy - 5:.1f}" font-size="10" text-anchor="middle">{esc(fmt(v))}</text>')
            out.append(f'<text x="{bx + bw / 2:.1f}" y="{y0 + ph + 16}" font-size="10" text-anchor="middle" fill="#333">'
                       f'{esc(short(c))}</text>')
            base = vals.get(BASELINE)
            if c != BASELINE and base:
                num, word = versus(title, base, v).split(" ", 1)
                out.append(f'<text x="{bx + bw / 2:.1f}" y="{y0 + ph + 30}" font-size="10" text-anchor="middle" '
                           f'fill="#222" font-weight="bold">{esc(num)}</text>')
                out.append(f'<text x="{bx + bw / 2:.1f}" y="{y0 + ph + 41}" font-size="9.5" text-anchor="middle" '
                           f'fill="#222">{esc(word)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def short(c: str) -> str:
    """A bar's name under it: a word."""
    return {"wasm-cwasm": "cwasm", "node-tuned": "tuned"}.get(c, label(c).split(" ")[0])


def versus(title: str, node: float, v: float) -> str:
    """A bar's comparison with node's, in words: '27× faster', '2.6× more'."""
    r_ = node / v
    if title == "Throughput":
        word, r_ = ("more", 1 / r_) if r_ < 1 else ("less", r_)
    elif title == "Cold start":
        word, r_ = ("faster", r_) if r_ >= 1 else ("slower", 1 / r_)
    elif title == "Artifact size":
        word, r_ = ("smaller", r_) if r_ >= 1 else ("larger", 1 / r_)
    else:
        word, r_ = ("less", r_) if r_ >= 1 else ("more", 1 / r_)
    return f"{r_:.0f}× {word}" if r_ >= 10 else f"{r_:.1f}× {word}"


def tick(v: float) -> str:
    if v >= 1e9:
        return f"{v / 1e9:g}G"
    if v >= 1e6:
        return f"{v / 1e6:g}M"
    if v >= 1e3:
        return f"{v / 1e3:g}k"
    return f"{v:g}"
