"""Draw a Grafana dashboard's panels to a PNG from a Prometheus' data, without Grafana.

There is no Grafana server where this project is developed, so the picture in docs/img/ is made this way: run
the service, scrape it with a real Prometheus, put a load on it (`load`), then `render` a dashboard's panels
from Prometheus' query_range API with matplotlib. It reads the dashboard JSON as Grafana would (template
variables, $__rate_interval, legend formats, units, thresholds) but draws only the panel types the Ledger
dashboards use (timeseries, stat, bargauge, heatmap). Both subcommands talk to 127.0.0.1 only.

    python scripts/render_dashboard.py load --url http://127.0.0.1:8080 --api-key "$KEY" --seconds 420
    python scripts/render_dashboard.py render grafana/dashboards/ledger-service.json \\
        --prometheus http://127.0.0.1:9090 --minutes 8 --rate-interval 30s --out docs/img/ledger-service.png

`render` needs matplotlib (not a project dependency: `pip install matplotlib` in a scratch venv). `load` needs
only the standard library.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import secrets
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

log = logging.getLogger("render_dashboard")


def _loopback_only(url: str) -> str:
    host = urllib.parse.urlsplit(url).hostname
    if host not in {"127.0.0.1", "localhost", "::1"}:
        sys.exit(f"{url}: this script only talks to the loopback interface")
    return url.rstrip("/")


def _request(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None, timeout: float = 10
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})  # noqa: S310 - loopback URL
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback URL
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


# --- load -------------------------------------------------------------------------------------------------


def load(url: str, api_key: str, seconds: float, workers: int) -> None:
    """A bounded, varied load: transfers at a rate that rises and falls, a few refusals of each kind, replays,
    reversals and reads. Stops by itself after `seconds`."""
    base = _loopback_only(url)
    auth = {"Authorization": f"Bearer {api_key}"}
    run = secrets.token_hex(3)
    world, world_usd = f"demo-{run}:world", f"demo-{run}:world-usd"
    wallets = [f"demo-{run}:wallet-{n}" for n in range(20)]
    for code, currency, floor in [(world, "BDT", None), (world_usd, "USD", None)] + [
        (wallet, "USD" if n % 4 == 0 else "BDT", 0) for n, wallet in enumerate(wallets)
    ]:
        status, body = _request(
            "POST", f"{base}/v1/accounts", {"code": code, "currency": currency, "min_balance": floor}, auth
        )
        if status != 201:
            sys.exit(f"could not open {code}: {status} {body}")
    currency_of = {wallet: ("USD" if n % 4 == 0 else "BDT") for n, wallet in enumerate(wallets)}
    started = time.monotonic()
    counter = iter(range(10**9))
    lock = threading.Lock()

    def rate_now(elapsed: float) -> float:
        """Requests a second per worker: a slow wave between 2 and 14."""
        return 8 + 6 * math.sin(2 * math.pi * elapsed / max(seconds / 2, 1))

    def worker(number: int) -> None:
        pick = secrets.SystemRandom()
        last_id = None
        while (elapsed := time.monotonic() - started) < seconds:
            with lock:
                n = next(counter)
            wallet = pick.choice(wallets)
            other = pick.choice([w for w in wallets if currency_of[w] == currency_of[wallet] and w != wallet])
            source = world_usd if currency_of[wallet] == "USD" else world
            kind = n % 20
            if kind < 8:
                body = {"postings": [{"account": source, "amount": -pick.randint(100, 50_000)},
                                     {"account": wallet, "amount": 0}]}  # fmt: skip
                body["postings"][1]["amount"] = -body["postings"][0]["amount"]
                status, answer = _request(
                    "POST", f"{base}/v1/transactions", body, {**auth, "Idempotency-Key": f"{run}-{n}"}
                )
                if status == 201:
                    last_id = answer["id"]
                    if n % 10 == 0:  # a client retry: the same key and request, replayed
                        _request("POST", f"{base}/v1/transactions", body, {**auth, "Idempotency-Key": f"{run}-{n}"})
            elif kind < 14:
                amount = pick.randint(50, 5_000)
                body = {"postings": [{"account": wallet, "amount": -amount}, {"account": other, "amount": amount}]}
                _request("POST", f"{base}/v1/transactions", body, {**auth, "Idempotency-Key": f"{run}-{n}"})
            elif kind == 14 and n % 3 == 0:  # insufficient-funds, now and then
                body = {"postings": [{"account": wallet, "amount": -(10**12)}, {"account": other, "amount": 10**12}]}
                _request("POST", f"{base}/v1/transactions", body, {**auth, "Idempotency-Key": f"{run}-{n}"})
            elif kind == 15 and n % 5 == 0:  # validation-error
                body = {"postings": [{"account": wallet, "amount": 1.5}, {"account": other, "amount": -1.5}]}
                _request("POST", f"{base}/v1/transactions", body, {**auth, "Idempotency-Key": f"{run}-{n}"})
            elif kind == 16 and last_id and n % 4 == 0:
                _request(
                    "POST", f"{base}/v1/transactions/{last_id}/reverse", {}, {**auth, "Idempotency-Key": f"{run}-r{n}"}
                )
                last_id = None
            elif kind == 17 and n % 7 == 0:  # unauthorized
                _request("GET", f"{base}/v1/accounts/{wallet}", None, {"Authorization": "Bearer ldg_wrong"})
            else:
                path = pick.choice(
                    [
                        f"/v1/accounts/{wallet}",
                        f"/v1/accounts/{wallet}/balance",
                        f"/v1/accounts/{wallet}/postings?limit=20",
                        f"/v1/transactions?account={wallet}&limit=20",
                        f"/v1/accounts/demo-{run}:missing",
                    ]
                )
                _request("GET", f"{base}{urllib.parse.quote(path, safe='/?=&:')}", None, auth)
            time.sleep(1 / rate_now(elapsed))

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 60)
    log.info("load done: %d requests in %.0f s", next(counter), time.monotonic() - started)


# --- render -----------------------------------------------------------------------------------------------

GRAFANA_COLORS = ["#73BF69", "#F2CC0C", "#8AB8FF", "#FF780A", "#F2495C", "#5794F2", "#B877D9", "#705DA0",
                  "#37872D", "#FADE2A", "#447EBC", "#C15C17", "#890F02", "#0A437C", "#6D1F62", "#584477"]  # fmt: skip
THRESHOLD_COLORS = {"green": "#73BF69", "red": "#F2495C", "orange": "#FF9830", "yellow": "#FADE2A"}
BACKGROUND, PANEL, TEXT, GRID = "#111217", "#181b1f", "#ccccdc", "#2c3235"


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = _loopback_only(url)

    def _get(self, path: str, **params: Any) -> Any:
        status, body = _request("GET", f"{self.url}{path}?{urllib.parse.urlencode(params)}", timeout=30)
        if status != 200 or body.get("status") != "success":
            raise RuntimeError(f"{path} {params}: {status} {body}")
        return body["data"]

    def label_values(self, selector: str, label: str) -> list[str]:
        result = self._get("/api/v1/query", query=f"group by ({label}) ({selector})")["result"]
        return sorted(item["metric"][label] for item in result if label in item["metric"])

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._get("/api/v1/query_range", query=expr, start=start, end=end, step=step)[
            "result"
        ]
        return result

    def query(self, expr: str, at: float) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._get("/api/v1/query", query=expr, time=at)["result"]
        return result


def _substitute(expr: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)", lambda m: values[m.group(1) or m.group(2)], expr)


def _regex_value(values: list[str]) -> str:
    escaped = [
        re.sub(r"[$^*{}\[\]'+?.()|]", lambda m: "\\\\" + m.group(0), v.replace("\\", "\\\\\\\\")) for v in values
    ]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def _variables(prometheus: Prometheus, dashboard: dict[str, Any], builtins: dict[str, str]) -> dict[str, str]:
    values = dict(builtins)
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
        if not match:
            raise ValueError(f"unsupported variable query {query}")
        found = prometheus.label_values(_substitute(match.group(1), values), match.group(2))
        if variable.get("multi") or variable.get("includeAll"):
            values[variable["name"]] = _regex_value(found) if found else ".*"
        else:
            default = variable.get("current", {}).get("value")
            values[variable["name"]] = default if default in found or not found else found[0]
    return values


def _legend(fmt: str, metric: dict[str, str]) -> str:
    if not fmt or fmt == "__auto":
        labels = {k: v for k, v in metric.items() if k not in {"job", "instance", "__name__"}}
        return ", ".join(f"{k}={v}" for k, v in labels.items()) or "value"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: metric.get(m.group(1), ""), fmt)


def _format(value: float, unit: str) -> str:
    if value is None or math.isnan(value):
        return "No data"
    if unit == "percentunit":
        return f"{value * 100:.2f}%" if abs(value) < 0.1 else f"{value * 100:.1f}%"
    if unit == "s":
        if abs(value) < 1:
            return f"{value * 1000:.1f} ms" if value >= 0.001 else f"{value * 1e6:.0f} µs"
        return f"{value:.1f} s" if value < 600 else f"{value / 60:.0f} min"
    if unit == "bytes":
        for suffix in ("B", "KiB", "MiB", "GiB"):
            if abs(value) < 1024:
                return f"{value:.0f} {suffix}"
            value /= 1024
        return f"{value:.1f} TiB"
    suffix = {"reqps": " req/s", "ops": " ops/s", "Bps": " B/s"}.get(unit, "")
    if abs(value) >= 1e6:
        return f"{value / 1e6:.2f} M{suffix}"
    if abs(value) >= 1e4:
        return f"{value / 1e3:.1f} K{suffix}"
    if abs(value) >= 100:
        return f"{value:,.0f}{suffix}"
    return f"{value:.3g}{suffix}"


def _threshold_color(value: float, defaults: dict[str, Any]) -> str:
    color = "#73BF69"
    for step in defaults.get("thresholds", {}).get("steps", []):
        if step.get("value") is None or (value is not None and not math.isnan(value) and value >= step["value"]):
            color = THRESHOLD_COLORS.get(step["color"], step["color"])
    return color


def render(dashboard_path: Path, prometheus_url: str, minutes: float, rate_interval: str, out: Path,
           end: float | None) -> None:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    dashboard = json.loads(dashboard_path.read_text(encoding="utf-8"))
    prometheus = Prometheus(prometheus_url)
    end = end or time.time()
    start = end - minutes * 60
    step = max(5.0, minutes * 60 / 240)
    builtins = {"__rate_interval": rate_interval, "__interval": f"{int(step)}s", "__range": f"{int(minutes * 60)}s"}
    values = _variables(prometheus, dashboard, builtins)
    panels = [p for p in dashboard["panels"]]
    bottom = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    unit_px = 0.34  # inches per grid height unit
    fig = plt.figure(figsize=(24 * 0.82, bottom * unit_px + 0.8), facecolor=BACKGROUND)
    fig.text(
        0.01, 1 - 0.25 / (bottom * unit_px + 0.8), dashboard["title"], color=TEXT, fontsize=16, va="top", weight="bold"
    )
    fig.text(0.99, 1 - 0.25 / (bottom * unit_px + 0.8),
             f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(start))}–{time.strftime('%H:%M UTC', time.gmtime(end))}"
             f"  ·  rendered from Prometheus by scripts/render_dashboard.py (not Grafana)",
             color="#8e8e8e", fontsize=9, va="top", ha="right")  # fmt: skip
    top_margin = 0.8 / (bottom * unit_px + 0.8)

    fig_w, fig_h = fig.get_size_inches() * 72

    def box(grid: dict[str, int], inner: bool) -> list[float]:
        """The panel's rectangle in figure fractions; `inner` leaves room for the title and the axis labels."""
        height = 1 - top_margin
        left, width = grid["x"] / 24 + 0.003, grid["w"] / 24 - 0.006
        bottom_, tall = (
            1 - top_margin - (grid["y"] + grid["h"]) / bottom * height + 0.006,
            grid["h"] / bottom * height - 0.012,
        )
        if not inner:
            return [left, bottom_, width, tall]
        pad_left, pad_bottom, pad_top, pad_right = 58 / fig_w, 18 / fig_h, 24 / fig_h, 8 / fig_w
        return [left + pad_left, bottom_ + pad_bottom, width - pad_left - pad_right, tall - pad_bottom - pad_top]

    for panel in panels:
        grid = panel["gridPos"]
        if panel["type"] == "row":
            fig.text(grid["x"] / 24 + 0.005, 1 - top_margin - (grid["y"] + 0.5) / bottom * (1 - top_margin),
                     panel["title"], color=TEXT, fontsize=12, weight="bold", va="center")  # fmt: skip
            continue
        frame = fig.add_axes(box(grid, inner=False), facecolor=PANEL)
        frame.set_xticks([])
        frame.set_yticks([])
        for spine in frame.spines.values():
            spine.set_color(GRID)
        frame.text(0.01, 0.985, panel["title"], color=TEXT, fontsize=10, va="top", transform=frame.transAxes)
        inner = panel["type"] in {"timeseries", "heatmap", "bargauge"}
        ax = fig.add_axes(box(grid, inner=True), facecolor=PANEL if inner else "none")
        for spine in ax.spines.values():
            spine.set_color(GRID if inner else "none")
        defaults = panel.get("fieldConfig", {}).get("defaults", {})
        unit = defaults.get("unit", "short")
        try:
            if panel["type"] == "timeseries":
                _draw_timeseries(ax, panel, prometheus, values, start, end, step, unit, defaults, mdates, FuncFormatter)
            elif panel["type"] == "stat":
                _draw_stat(frame, panel, prometheus, values, start, end, step, unit, defaults)
                ax.remove()
            elif panel["type"] == "bargauge":
                _draw_bargauge(ax, panel, prometheus, values, end, unit, defaults)
            elif panel["type"] == "heatmap":
                _draw_heatmap(ax, panel, prometheus, values, start, end, step, mdates)
        except RuntimeError as error:
            ax.text(0.5, 0.5, f"query failed: {error}"[:120], color="#F2495C", ha="center", va="center",
                    transform=ax.transAxes, fontsize=7, wrap=True)  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=72, facecolor=BACKGROUND)
    plt.close(fig)
    log.info("wrote %s", out)


def _style_axes(ax: Any) -> None:
    ax.tick_params(colors="#8e8e8e", labelsize=7)
    ax.grid(color=GRID, linewidth=0.6)


def _draw_timeseries(ax: Any, panel: dict[str, Any], prometheus: Prometheus, values: dict[str, str], start: float,
                     end: float, step: float, unit: str, defaults: dict[str, Any], mdates: Any,
                     formatter: Any) -> None:  # fmt: skip
    from datetime import UTC, datetime

    _style_axes(ax)
    stacked = defaults.get("custom", {}).get("stacking", {}).get("mode") == "normal"
    color_index = 0
    series_drawn = 0
    base: dict[float, float] = {}
    for target in panel["targets"]:
        for series in prometheus.query_range(_substitute(target["expr"], values), start, end, step):
            points = [(float(t), float(v)) for t, v in series["values"] if not math.isnan(float(v))]
            if not points:
                continue
            times = [datetime.fromtimestamp(t, tz=UTC) for t, _ in points]
            ys = [v + (base.get(t, 0.0) if stacked else 0.0) for t, v in points]
            if stacked:
                base.update({t: y for (t, _), y in zip(points, ys, strict=True)})
            color = GRAFANA_COLORS[color_index % len(GRAFANA_COLORS)]
            color_index += 1
            ax.plot(
                times, ys, color=color, linewidth=1.2, label=_legend(target.get("legendFormat", ""), series["metric"])
            )
            ax.fill_between(times, ys, color=color, alpha=0.08)
            series_drawn += 1
    threshold_style = defaults.get("custom", {}).get("thresholdsStyle", {}).get("mode")
    if threshold_style and threshold_style != "off":
        for step_ in defaults.get("thresholds", {}).get("steps", []):
            if step_.get("value") is not None:
                ax.axhline(step_["value"], color=THRESHOLD_COLORS.get(step_["color"], "#F2495C"), linestyle="--",
                           linewidth=0.9)  # fmt: skip
    if not series_drawn:
        ax.text(0.5, 0.5, "No data", color="#8e8e8e", ha="center", va="center", transform=ax.transAxes)
        return
    ax.set_xlim(datetime.fromtimestamp(start, tz=UTC), datetime.fromtimestamp(end, tz=UTC))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    ax.yaxis.set_major_formatter(formatter(lambda v, _: _format(v, unit)))
    if defaults.get("custom", {}).get("axisSoftMin") == 0:
        ax.set_ylim(bottom=0)
    legend = ax.legend(
        loc="upper left", fontsize=6.5, frameon=False, labelcolor=TEXT, ncol=2 if series_drawn > 4 else 1
    )
    legend.set_in_layout(False)


def _draw_stat(ax: Any, panel: dict[str, Any], prometheus: Prometheus, values: dict[str, str], start: float,
               end: float, step: float, unit: str, defaults: dict[str, Any]) -> None:  # fmt: skip
    ax.set_xticks([])
    ax.set_yticks([])
    target = panel["targets"][0]
    result = prometheus.query_range(_substitute(target["expr"], values), start, end, step)
    if panel["options"].get("textMode") == "name":
        text = ", ".join(_legend(target.get("legendFormat", ""), series["metric"]) for series in result) or "No data"
        ax.text(0.5, 0.45, text, color=TEXT, fontsize=18, ha="center", va="center", transform=ax.transAxes)
        return
    if not result:
        ax.text(0.5, 0.45, "No data", color="#8e8e8e", fontsize=14, ha="center", va="center", transform=ax.transAxes)
        return
    series = result[0]
    points = [float(v) for _, v in series["values"]]
    last = points[-1]
    mapped = defaults.get("mappings", [])
    text = _format(last, unit)
    for mapping in mapped:
        option = mapping.get("options", {}).get(f"{last:g}") if not math.isnan(last) else None
        if option:
            text = option["text"]
    color = _threshold_color(last, defaults)
    if panel["options"].get("colorMode") == "background":
        ax.set_facecolor(color)
        text_color = "#ffffff"
    else:
        text_color = color if defaults.get("thresholds", {}).get("steps", [{}])[0].get("color") != "green" else TEXT
    if panel["options"].get("graphMode") == "area" and len(points) > 1:
        clean = [p if not math.isnan(p) else 0 for p in points]
        top = max(clean) or 1
        ax.fill_between(range(len(clean)), [p / top * 0.45 for p in clean], color="#ffffff", alpha=0.18)
        ax.set_xlim(0, len(clean) - 1)
        ax.set_ylim(0, 1)
    ax.text(0.5, 0.55, text, color=text_color, fontsize=22, weight="bold", ha="center", va="center",
            transform=ax.transAxes)  # fmt: skip


def _draw_bargauge(ax: Any, panel: dict[str, Any], prometheus: Prometheus, values: dict[str, str], end: float,
                   unit: str, defaults: dict[str, Any]) -> None:  # fmt: skip
    target = panel["targets"][0]
    result = prometheus.query(_substitute(target["expr"], values), end)
    ax.set_xticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if not result:
        ax.set_yticks([])
        ax.text(0.5, 0.5, "No data", color="#8e8e8e", ha="center", va="center", transform=ax.transAxes)
        return
    names = [_legend(target.get("legendFormat", ""), item["metric"]) for item in result]
    numbers = [float(item["value"][1]) for item in result]
    top = max(max(numbers), 1)
    colors = [_threshold_color(v, defaults) for v in numbers]
    ax.barh(range(len(numbers)), numbers, color=colors, height=0.6)
    ax.barh(range(len(numbers)), [top] * len(numbers), color="#ffffff", alpha=0.05, height=0.6)
    ax.set_yticks(range(len(numbers)), names, color=TEXT, fontsize=8)
    ax.invert_yaxis()
    for index, number in enumerate(numbers):
        ax.text(top, index, " " + _format(number, unit), color=TEXT, va="center", ha="right", fontsize=8)


def _draw_heatmap(ax: Any, panel: dict[str, Any], prometheus: Prometheus, values: dict[str, str], start: float,
                  end: float, step: float, mdates: Any) -> None:  # fmt: skip
    import numpy as np
    from matplotlib import colormaps

    target = panel["targets"][0]
    result = prometheus.query_range(_substitute(target["expr"], values), start, end, step)
    buckets = sorted(result, key=lambda s: float(s["metric"]["le"]))
    if not buckets:
        ax.text(0.5, 0.5, "No data", color="#8e8e8e", ha="center", va="center", transform=ax.transAxes)
        return
    times = sorted({float(t) for series in buckets for t, _ in series["values"]})
    index = {t: i for i, t in enumerate(times)}
    grid = np.zeros((len(buckets), len(times)))
    for row, series in enumerate(buckets):
        for t, v in series["values"]:
            grid[row, index[float(t)]] = float(v)
    counts = np.diff(np.vstack([np.zeros(len(times)), grid]), axis=0).clip(min=0)  # cumulative -> per bucket
    cmap = colormaps["Oranges"].copy()
    cmap.set_bad(PANEL)
    shown = np.ma.masked_less_equal(np.sqrt(counts), 0)
    ax.imshow(shown, aspect="auto", origin="lower", cmap=cmap, interpolation="nearest")
    labels = [series["metric"]["le"] for series in buckets]
    ax.set_yticks(
        range(len(labels)), [_format(float(le), "s") if le != "+Inf" else "+Inf" for le in labels], fontsize=6
    )
    ticks = list(range(0, len(times), max(1, len(times) // 6)))
    ax.set_xticks(ticks, [time.strftime("%H:%M", time.gmtime(times[i])) for i in ticks])
    ax.tick_params(colors="#8e8e8e", labelsize=7)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    load_parser = commands.add_parser("load", help="put a bounded, varied load on a service on 127.0.0.1")
    load_parser.add_argument("--url", default="http://127.0.0.1:8080")
    load_parser.add_argument("--api-key", required=True, help="a key with the write scope")
    load_parser.add_argument("--seconds", type=float, default=300)
    load_parser.add_argument("--workers", type=int, default=4)
    render_parser = commands.add_parser("render", help="draw a dashboard's panels from Prometheus to a PNG")
    render_parser.add_argument("dashboard", type=Path)
    render_parser.add_argument("--prometheus", default="http://127.0.0.1:9090")
    render_parser.add_argument("--minutes", type=float, default=10)
    render_parser.add_argument("--end", type=float, help="unix time of the right edge (default: now)")
    render_parser.add_argument("--rate-interval", default="1m", help="what $__rate_interval stands for")
    render_parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "load":
        load(args.url, args.api_key, args.seconds, args.workers)
    else:
        render(args.dashboard, args.prometheus, args.minutes, args.rate_interval, args.out, args.end)


if __name__ == "__main__":
    main()
