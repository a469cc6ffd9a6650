"""How a soak (app/tools/bench_soak.py) shows its rows: the live terminal table, the Python-heap
table of --tracemalloc, and the PNG of RSS per process and latency over time. Pure: rows in,
a rich Table or a file out."""
from __future__ import annotations

import numpy as np


def rows_table(rows: list[dict], title: str):
    from rich.table import Table
    names = [n for n in ("stack", "policy", "chromium", "other") if any(n in r["rss_mb"] for r in rows)]
    table = Table(title=title)
    for col in ["t min", *[f"{n} MB/fds" for n in names], "tmp MB", "rec MB", "fps page", "fps stack",
                "lat p50", "policy ms CPU/chunk", "ep (ok)", "load"]:
        table.add_column(col, justify="right")

    def fps(d: dict) -> str:
        return "/".join(f"{v:.0f}" for _, v in sorted(d.items())) or "-"

    for r in rows:
        table.add_row(f"{r['t_s'] / 60:.1f}",
                      *[f"{r['rss_mb'].get(n, 0):.0f}/{r['fds'].get(n, 0)}" for n in names],
                      f"{r['tmp_mb']:.2f}", f"{r['recording_mb']:.0f}", fps(r["fps_page"]), fps(r["fps_stack"]),
                      "-" if r["latency_ms_p50"] is None else f"{r['latency_ms_p50']:.0f}",
                      "-" if r.get("policy_cpu_ms_per_chunk") is None else f"{r['policy_cpu_ms_per_chunk']:.0f}",
                      f"{r['episodes']} ({r['successes']})", f"{r['load_1m']:.1f}")
    return table


def heap_table(report: dict):
    from rich.table import Table
    first, last = report["traced_mb_first_last"]
    table = Table(title=f"Python allocations that grew after the warm-up (traced {first:.1f} -> {last:.1f} MB)")
    table.add_column("MB", justify="right")
    table.add_column("blocks", justify="right")
    table.add_column("allocated at (innermost first)")
    for site in report["sites"]:
        table.add_row(f"{site['mb']:.3f}", str(site["count"]), "\n".join(site["traceback"][:6]))
    return table


def write_plot(rows: list[dict], warmup_s: float, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    t = [r["t_s"] / 60 for r in rows]
    fig, (ax_rss, ax_lat) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    for name in sorted({n for r in rows for n in r["rss_mb"]}):
        ax_rss.plot(t, [r["rss_mb"].get(name, np.nan) for r in rows], marker=".", label=name)
    ax_rss.set_ylabel("RSS (MB)")
    ax_rss.legend(loc="upper left")
    ax_lat.plot(t, [np.nan if r["latency_ms_p50"] is None else r["latency_ms_p50"] for r in rows], marker=".",
                label="chunk latency p50")
    # the machine-speed canary beside it: when both rise together, the host got slower
    ax_lat.plot(t, [np.nan if r.get("policy_cpu_ms_per_chunk") is None else r["policy_cpu_ms_per_chunk"]
                    for r in rows], marker=".", color="tab:red", label="policy CPU per chunk")
    ax_lat.set_ylabel("ms")
    ax_lat.legend(loc="upper left")
    ax_lat.set_xlabel("minutes")
    for ax in (ax_rss, ax_lat):
        ax.axvline(warmup_s / 60, color="grey", linestyle=":", label="warm-up")
        ax.grid(alpha=0.3)
    fig.suptitle("console soak: RSS per process and chunk latency per interval")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
