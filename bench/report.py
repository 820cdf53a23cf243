"""Turn a fan-out bench report into the markdown tables, the target check and the plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .servers import SERVERS

__all__ = ("check_targets", "markdown", "plot")

_ROWS = [
    ("delivered_pct", "chat delivered %", "{:.1f}"),
    ("p50_ms", "chat latency p50 (ms)", "{:.1f}"),
    ("p95_ms", "chat latency p95 (ms)", "{:.1f}"),
    ("p99_ms", "chat latency p99 (ms)", "{:.1f}"),
    ("max_ms", "chat latency max (ms)", "{:.1f}"),
    ("doc_msgs_per_s", "doc msgs/s received", "{:.0f}"),
    ("awareness_msgs_per_s", "awareness msgs/s received", "{:.0f}"),
    ("server_cpu_pct", "server CPU (% of a core)", "{:.0f}"),
    ("server_peak_rss_mb", "server peak RSS (MB)", "{:.0f}"),
    ("synced", "clients synced", "{:.0f}"),
    ("loadgen_cpu_pct", "load generator CPU (%)", "{:.0f}"),
]


def _fmt(value: Any, pattern: str) -> str:
    if value is None:
        return "-"
    return pattern.format(value)


def _ratio(ours: Any, peer: Any) -> str:
    if not isinstance(ours, (int, float)) or not isinstance(peer, (int, float)) or peer == 0:
        return "-"
    return f"{ours / peer:.2f}x"


def _get(report: dict[str, Any], key: str, server: str, figure: str) -> Any:
    return report["medians"].get(key, {}).get(server, {}).get(figure)


def check_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 5's targets, each with the measured medians and pass/fail/unmeasured."""
    out: list[dict[str, Any]] = []

    def add(name: str, ok: bool | None, detail: str) -> None:
        out.append({"target": name, "met": ok, "detail": detail})

    g = lambda key, figure, server="ours": _get(report, key, server, figure)  # noqa: E731

    def below(key: str, limit: float) -> tuple[bool, str]:
        p99 = g(key, "p99_ms")
        if p99 is None:
            return False, "no chat message delivered"
        return p99 < limit, f"{p99:.1f} ms"
    if g("A10", "delivered_pct") is not None:
        node_p99, node_cpu = g("A10", "p99_ms", "node"), g("A10", "server_cpu_pct", "node")
        add("A10: 100% delivered", g("A10", "delivered_pct") >= 100.0, f"{g('A10', 'delivered_pct'):.2f}%")
        if node_p99 is not None and g("A10", "p99_ms") is not None:
            add("A10: p99 <= Node's", g("A10", "p99_ms") <= node_p99, f"{g('A10', 'p99_ms'):.1f} ms vs {node_p99:.1f} ms")
            add("A10: CPU <= 1.5x Node's", g("A10", "server_cpu_pct") <= 1.5 * node_cpu, f"{g('A10', 'server_cpu_pct'):.0f}% vs {node_cpu:.0f}% ({g('A10', 'server_cpu_pct') / node_cpu:.2f}x)")
    for key in ("B2", "B10"):
        if g(key, "delivered_pct") is not None:
            add(f"{key}: 100% delivered", g(key, "delivered_pct") >= 100.0, f"{g(key, 'delivered_pct'):.2f}%")
            add(f"{key}: p99 < 100 ms", *below(key, 100))
    if g("C10", "delivered_pct") is not None:
        add("C10: 100% delivered", g("C10", "delivered_pct") >= 100.0, f"{g('C10', 'delivered_pct'):.2f}%")
        add("C10: p99 < 250 ms", *below("C10", 250))
    cold = report.get("extras", {}).get("cold_load", {}).get("ours", {})
    for layout in ("compacted", "raw"):
        entry = cold.get(f"100000-{layout}")
        if entry and entry.get("server_load_ms") is not None:
            met = entry["server_load_ms"] < 150 if layout == "compacted" else None
            add(f"cold load 100,000 updates ({layout}) < 150 ms server side", met, f"{entry['server_load_ms']:.1f} ms")
    join = report.get("extras", {}).get("concurrent_join", {})
    if "ours" in join:
        j = join["ours"]
        add("100 concurrent joins all sync", j["synced"] == j["clients"], f"{j['synced']}/{j['clients']}")
    return out


def _table(report: dict[str, Any], key: str) -> list[str]:
    servers = [s for s in report["settings"]["servers"] if s in report["medians"].get(key, {})]
    peers = [s for s in servers if s != "ours"]
    head = "| figure | " + " | ".join(SERVERS[s] for s in servers) + "".join(f" | ours / {SERVERS[p]}" for p in peers if "ours" in servers) + " |"
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for figure, label, pattern in _ROWS:
        cells = [_fmt(report["medians"][key][s].get(figure), pattern) for s in servers]
        ratios = []
        if "ours" in servers:
            ratios = [_ratio(_get(report, key, "ours", figure), _get(report, key, p, figure)) for p in peers]
        lines.append(f"| {label} | " + " | ".join(cells) + "".join(f" | {r}" for r in ratios) + " |")
    for s in servers:
        if "error" in report["medians"][key][s]:
            lines.append(f"\n{SERVERS[s]} failed: `{report['medians'][key][s]['error']}`")
    return lines


def markdown(report: dict[str, Any]) -> str:
    st, m = report["settings"], report["machine"]
    lines = [
        "# Workshop fan-out bench (issue 5)",
        "",
        f"Generated {report['generated_at']} by `python -m bench.fanout` in {report['duration_s']:.0f} s; "
        f"{st['rounds']} round(s), medians; {st['warmup_s']:g} s warm-up, {st['measure_s']:g} s measured, "
        f"{st['drain_s']:g} s drain; clients offer permessage-deflate: {st['deflate_offered']}. "
        f"Machine: {m['cpus']} CPUs ({m['platform']}), Python {m['python']}; load average before "
        f"{m['load_avg_before'][0]:.2f}, after {m['load_avg_after'][0]:.2f} (the machine is shared: expect noise).",
        "",
        "Each participant: a chat message every 2 s, a value toggle every 5 s, a cursor update at the "
        "scenario's rate. Our server runs with SQLite persistence (every update committed before relay); "
        "pycrdt-websocket with its SQLite YStore; the Node server without persistence (its default). "
        "Ratios are ours / peer (below 1 is better for latency, CPU and memory).",
        "",
    ]
    if report.get("targets"):
        lines += ["## Targets", "", "| target | met | measured |", "| --- | --- | --- |"]
        for t in report["targets"]:
            met = {True: "yes", False: "**no**", None: "(info)"}[t["met"]]
            lines.append(f"| {t['target']} | {met} | {t['detail']} |")
        lines.append("")
    for key, info in report["scenarios"].items():
        if key not in report["medians"]:
            continue
        lines += [f"## {info['title']}", ""] + _table(report, key) + [""]
    extras = report.get("extras") or {}
    if extras.get("cold_load"):
        lines += ["## Cold load", "", "Fresh server, fresh client: time from WebSocket open to the full sync step 2, and the server's own load time (its `loaded updates=N ... in X ms` log line). `raw`: every update stored, no snapshot; `compacted`: a snapshot plus a tail of 1,000 updates, as compaction leaves it.", ""]
        lines += ["| server | stored | layout | open -> step 2 (ms) | server load (ms) | step 2 bytes |", "| --- | --- | --- | --- | --- | --- |"]
        for server, entries in extras["cold_load"].items():
            for label, e in entries.items():
                n, layout = label.split("-")
                lines.append(f"| {SERVERS[server]} | {int(n):,} | {layout} | {_fmt(e.get('open_to_step2_ms'), '{:.1f}')} | {_fmt(e.get('server_load_ms'), '{:.1f}')} | {_fmt(e.get('step2_bytes'), '{:,}')} |")
        lines.append("")
    if extras.get("reconnect"):
        lines += ["## Reconnect with 1,000 pending edits", "", "A client syncs, goes offline, makes 1,000 edits (one transaction each), reconnects. Converged: it has the server's step 2 and a peer that stayed connected holds all 1,000 edits. `provider`: the edits travel as one merged step 2 (what y-websocket does); `outbox`: as 1,000 update messages.", ""]
        lines += ["| server | mode | open -> converged (ms) |", "| --- | --- | --- |"]
        for server, modes in extras["reconnect"].items():
            for mode, e in modes.items():
                lines.append(f"| {SERVERS[server]} | {mode} | {_fmt(e.get('converged_ms'), '{:.1f}')} |")
        lines.append("")
    if extras.get("concurrent_join"):
        lines += ["## 100 clients open a brand-new workshop at once", "", "| server | synced | time to last sync (ms) |", "| --- | --- | --- |"]
        for server, e in extras["concurrent_join"].items():
            lines.append(f"| {SERVERS[server]} | {e['synced']}/{e['clients']} | {_fmt(e.get('all_synced_ms'), '{:.0f}')} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    """Grouped bars: chat latency p50 (solid) and p99 (hatched) per scenario and server."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'); no plot", flush=True)
        return
    keys = [k for k in report["scenarios"] if k in report["medians"]]
    servers = report["settings"]["servers"]
    colors = {"ours": "#2b7bb9", "node": "#6aa84f", "pycrdt": "#e69138"}
    fig, ax = plt.subplots(figsize=(10, 5))
    width = 0.8 / max(1, len(servers))
    for i, s in enumerate(servers):
        xs = [k_i + (i - (len(servers) - 1) / 2) * width for k_i in range(len(keys))]
        p50 = [_get(report, k, s, "p50_ms") or 0 for k in keys]
        p99 = [_get(report, k, s, "p99_ms") or 0 for k in keys]
        ax.bar(xs, p99, width * 0.9, color=colors.get(s), alpha=0.45, hatch="//", label=f"{SERVERS[s]} p99")
        ax.bar(xs, p50, width * 0.9, color=colors.get(s), label=f"{SERVERS[s]} p50")
        for x, k in zip(xs, keys, strict=False):
            d = _get(report, k, s, "delivered_pct")
            if d is not None and d < 99.95:
                ax.annotate(f"{d:.0f}%", (x, max(_get(report, k, s, "p99_ms") or 1, 1)), ha="center", va="bottom", fontsize=7, color="red")
    ax.set_yscale("log")
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels([report["scenarios"][k]["title"].replace(", ", "\n", 1) for k in keys], fontsize=8)
    ax.set_ylabel("chat fan-out latency (ms, log)")
    ax.set_title("Chat fan-out latency p50 / p99 (red: % delivered when below 100)")
    ax.legend(fontsize=7, ncol=len(servers))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
