#!/usr/bin/env python3
"""Draws grafana/seatkeeper.json's panels from a real Prometheus, to a PNG.

Grafana cannot be installed on the machine the README's screenshot was made on, so
this runs the dashboard's own queries (every target's `expr`, with `$job` as `.*`)
through Prometheus' range-query API and lays the panels out by their gridPos, in
Grafana's dark colours. What it draws is what the dashboard asks Prometheus.

    pip install matplotlib
    scripts/render-dashboard.py --prometheus http://127.0.0.1:9090 --minutes 10 \
        --out docs/dashboard.png
"""

import argparse
import json
import math
import pathlib
import re
import time
import urllib.parse
import urllib.request

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
BACKGROUND, PANEL, TEXT, GRID = "#111217", "#181b1f", "#ccccdc", "#2c3235"
PALETTE = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2",
           "#b877d9", "#fade2a", "#96d98d", "#ff9830"]


def query_range(base, expr, start, end, step):
    params = urllib.parse.urlencode(
        {"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{base}/api/v1/query_range?{params}", timeout=30) as r:
        answer = json.load(r)
    if answer.get("status") != "success":
        raise SystemExit(f"{expr}: {answer}")
    return answer["data"]["result"]


def legend(template, labels):
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template) \
        or json.dumps(labels)


def scaled(unit, values):
    """Values and an axis label in the panel's unit."""
    if unit == "s":
        return [v * 1000 for v in values], "ms"
    if unit == "percentunit":
        return [v * 100 for v in values], "%"
    return values, {"reqps": "req/s", "ops": "ops/s"}.get(unit, "")


def draw(panel, ax, base, start, end, step):
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
    ax.set_facecolor(PANEL)
    ax.set_title(panel["title"], color=TEXT, fontsize=9, loc="left")
    for side in ax.spines.values():
        side.set_color(GRID)
    series = []
    for target in panel["targets"]:
        expr = target["expr"].replace("$job", ".*").replace("$__rate_interval", f"{4 * step}s")
        for result in query_range(base, expr, start, end, step):
            points = [(float(t), float(v)) for t, v in result["values"]]
            points = [(t, v) for t, v in points if math.isfinite(v)]
            if points:
                series.append((legend(target.get("legendFormat", ""), result["metric"]), points))
    if panel["type"] == "stat":
        ax.set_xticks([])
        ax.set_yticks([])
        if not series:
            ax.text(0.5, 0.45, "no data", color=GRID, ha="center", va="center",
                    transform=ax.transAxes, fontsize=14)
            return
        last = series[0][1][-1][1]
        (value,), label = scaled(unit, [last])
        text = f"{value:,.0f}" if abs(value) >= 100 or value == int(value) else f"{value:.3g}"
        ax.text(0.5, 0.42, f"{text} {label}".strip(), color=PALETTE[0], ha="center",
                va="center", transform=ax.transAxes, fontsize=20, weight="bold")
        ts = [t for t, _ in series[0][1]]
        vs = [v for _, v in series[0][1]]
        ax.fill_between(ts, vs, color=PALETTE[0], alpha=0.12)
        return
    stacked = panel.get("fieldConfig", {}).get("defaults", {}).get("custom", {}) \
        .get("stacking", {}).get("mode") == "normal"
    ax.tick_params(colors=TEXT, labelsize=7)
    ax.grid(color=GRID, linewidth=0.5)
    label = ""
    below = {}
    # The busiest ten, as a legend of Grafana's sorted by mean would show first.
    series.sort(key=lambda s: -sum(v for _, v in s[1]) / len(s[1]))
    for i, (name, points) in enumerate(series[:10]):
        ts = [t for t, _ in points]
        vs, label = scaled(unit, [v for _, v in points])
        colour = PALETTE[i % len(PALETTE)]
        if stacked:
            base_vs = [below.get(t, 0.0) for t in ts]
            top = [b + v for b, v in zip(base_vs, vs)]
            ax.fill_between(ts, base_vs, top, color=colour, alpha=0.35, linewidth=0)
            ax.plot(ts, top, color=colour, linewidth=1, label=name)
            below.update(zip(ts, top))
        else:
            ax.plot(ts, vs, color=colour, linewidth=1, label=name)
    if label:
        ax.set_ylabel(label, color=TEXT, fontsize=7)
    ax.set_ylim(bottom=0)
    ax.set_xlim(start, end)
    every = 60 * max(1, round((end - start) / 60 / 6))
    ticks = list(range(math.ceil(start / every) * every, int(end) + 1, every))
    ax.set_xticks(ticks)
    ax.set_xticklabels([time.strftime("%H:%M", time.gmtime(t)) for t in ticks])
    if series:
        ax.legend(loc="upper left", fontsize=6, frameon=False, labelcolor=TEXT,
                  ncol=2 if len(series) > 4 else 1)
    else:
        ax.text(0.5, 0.5, "no data", color=GRID, ha="center", va="center",
                transform=ax.transAxes)


def main():
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--prometheus", default="http://127.0.0.1:9090")
    args.add_argument("--dashboard", default=str(ROOT / "grafana" / "seatkeeper.json"))
    args.add_argument("--minutes", type=float, default=10)
    args.add_argument("--end", type=float, help="Unix time of the right edge (default: now)")
    args.add_argument("--out", default="dashboard.png")
    opts = args.parse_args()
    dashboard = json.load(open(opts.dashboard))
    panels = dashboard["panels"]
    end = opts.end or time.time()
    start = end - opts.minutes * 60
    step = max(2, int(opts.minutes * 60 / 240))
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    unit = 0.36  # inches per grid unit of height; a width unit is 1/24 of the figure
    fig = plt.figure(figsize=(16, rows * unit + 0.6), facecolor=BACKGROUND)
    top = 1 - 0.6 / (rows * unit + 0.6)
    fig.text(0.01, 1 - 0.3 / (rows * unit + 0.6), f"{dashboard['title']}: last "
             f"{opts.minutes:g} minutes, from {opts.prometheus}", color=TEXT, fontsize=11,
             va="center")
    pad_x, pad_y = 0.006, 0.012
    for panel in panels:
        g = panel["gridPos"]
        left = g["x"] / 24 + pad_x
        width = g["w"] / 24 - 2 * pad_x
        height = g["h"] / rows * top - 2 * pad_y
        bottom = top - (g["y"] + g["h"]) / rows * top + pad_y
        inner_x = 0.03 if panel["type"] == "timeseries" else 0.0
        inner_y = 0.025 if panel["type"] == "timeseries" else 0.0
        ax = fig.add_axes([left + inner_x, bottom + inner_y, width - inner_x,
                           height - inner_y - 0.018])
        draw(panel, ax, opts.prometheus, start, end, step)
    fig.savefig(opts.out, dpi=80, facecolor=BACKGROUND)
    print(f"wrote {opts.out}")


if __name__ == "__main__":
    main()
