"""The peer table: medians per row and ratios to the ceiling of the same runs (text and Markdown)."""

from __future__ import annotations

import statistics

from bench.peers.registry import PEERS

# (key, column title, unit): throughput ratios above 1 are faster than the ceiling, latency ratios above 1 slower.
COLUMNS = (
    ("s1", "S1 enqueue", "jobs/s"),
    ("s2", "S2 drain", "jobs/s"),
    ("p50", "S3 p50", "ms"),
    ("p99", "S3 p99", "ms"),
)


# Costs per job during S2 (bench/scenarios.py, CpuMeter): the worker process with its children (its
# CPU time and its threads' context switches), and Redis's CPU time; each with its format.
CPU = {
    "consumer_us": ("S2 worker CPU µs/job", "{:,.0f}"),
    "consumer_switches": ("S2 worker context switches/job", "{:.1f}"),
    "redis_us": ("S2 Redis CPU µs/job", "{:,.0f}"),
}


def _ratio(values: list[float], ceiling: list[float]) -> float | None:
    pairs = [v / c for v, c in zip(values, ceiling, strict=False) if c]
    return statistics.median(pairs) if pairs else None


def _cell(values: list[float], ceiling: list[float], unit: str) -> str:
    median = statistics.median(values)
    shown = f"{median:,.0f}" if unit == "jobs/s" or median >= 1000 else f"{median:.2f}"
    ratio = _ratio(values, ceiling)
    return shown if ratio is None else f"{shown} ({_times(ratio)})"


def _times(ratio: float) -> str:
    return f"{ratio:,.0f}x" if ratio >= 100 else f"{ratio:.2f}x"


def rows(result: dict, describe_tempotask: dict[str, str]) -> list[list[str]]:
    values, errors, status = result["values"], result["errors"], result["peers"]
    ceiling = values.get("ceiling", [])
    heads = [f"{title} {unit}" for _, title, unit in COLUMNS]
    table = [["queue", "configuration", *heads, "RSS MiB", *(title for title, _ in CPU.values()), "versions"]]

    def add(label: str, row: str, config: str, versions: str) -> None:
        runs = values.get(row, [])
        if row in errors and not runs:
            table.append([label, config, f"failed: {errors[row]}", *[""] * (len(table[0]) - 4), versions])
            return
        cells = [_cell([r[key] for r in runs], [c[key] for c in ceiling], unit) for key, _, unit in COLUMNS]
        rss = f"{statistics.median(r['rss'] for r in runs):.1f}"
        cpu = [
            shown.format(statistics.median(r[key] for r in runs)) if all(key in r for r in runs) else "—"
            for key, (_, shown) in CPU.items()
        ]
        note = f" (failed in a later run: {errors[row]})" if row in errors else ""
        table.append([label, config + note, *cells, rss, *cpu, versions])

    if ceiling:
        add("ceiling (plain Streams loop)", "ceiling", "XADD; XREADGROUP COUNT 100, XACK per batch", "redis-py")
    for config, text in describe_tempotask.items():
        add("tempotask", f"tempotask/{config}", text, "this checkout")
    for name, state in status.items():
        peer = PEERS[name]
        versions = ", ".join(f"{p} {v}" for p, v in state.get("versions", {}).items())
        if "skipped" in state:
            table.append([peer.label, "skipped", state["skipped"], *[""] * (len(table[0]) - 3)])
        elif "failed" in state:
            table.append([peer.label, "failed", state["failed"], *[""] * (len(table[0]) - 3)])
        else:
            for config, text in peer.configs.items():
                add(peer.label, f"{name}/{config}", f"{config}: {text}", versions)
    return table


def text_table(table: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in table)


def markdown_table(table: list[list[str]]) -> str:
    lines = ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in table]
    lines.insert(1, "|" + "|".join(" --- " for _ in table[0]) + "|")
    return "\n".join(lines)


def summary_rows(result: dict, describe_tempotask: dict[str, str]) -> list[list[str]]:
    """The README's table: ratios to the ceiling only, the version with the name, the exact setting."""
    values, errors, status = result["values"], result["errors"], result["peers"]
    ceiling = values.get("ceiling", [])
    table = [["queue", "worker configuration", "S1 enqueue", "S2 drain", "S3 p50", "S3 p99", "RSS MiB"]]

    def add(label: str, row: str, config: str) -> None:
        runs = values.get(row, [])
        if not runs:
            table.append([label, config, f"failed: {errors.get(row, 'no value')}", "", "", "", ""])
            return
        ratios = [_ratio([r[key] for r in runs], [c[key] for c in ceiling]) for key, _, _ in COLUMNS]
        cells = ["—" if x is None else _times(x) for x in ratios]
        table.append([label, config, *cells, f"{statistics.median(r['rss'] for r in runs):.0f}"])

    for config, text in describe_tempotask.items():
        add("tempotask", f"tempotask/{config}", text)
    for name, state in status.items():
        peer = PEERS[name]
        versions = state.get("versions", {})
        main = versions.get(peer.packages[0], "")
        label = f"{peer.label} {main}".strip()
        if "skipped" in state or "failed" in state:
            table.append([label, state.get("skipped") or state["failed"], "", "", "", "", ""])
            continue
        for config, text in peer.configs.items():
            add(label, f"{name}/{config}", f"{config}: {text}")
    return table
