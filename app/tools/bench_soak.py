"""Benchmark: a long console session. Does anything grow or drift while the demo runs for an hour?

    python -m app.tools.bench_soak --minutes 60 [--interval 60] [--warmup 120] [--plot soak.png]
    python -m app.tools.bench_soak --minutes 60 --browser playwright     # the page driven over CDP
    python -m app.tools.bench_soak --minutes 60 --page-memory            # + the page's JS heap and DOM nodes

Starts run_demo's stack in this process with an operator's page open in headless chromium
(app.tools.bench_live.live_stack: policy server child, MuJoCo sim with three cameras,
10 Hz control loop, Gradio console, recording into a temporary dataset), and cycles the policy
through the tasks the checkpoint was taught (--tasks) on the wall clock (bench_live.recorded_rollout:
reset the scene with the next held-out seed, the task's canonical instruction, START with Record
ticked, until the task check or its time limit, save; next task ...). The page (--browser):
  plain       (default) `chromium --headless=new URL` started by this process, as an operator's
              browser: nothing attached to it. The page's frame rate is what the console served
              to it (app.live_view.LiveFeeds.served).
  playwright  the page through Playwright (bench_live's harness): page counters read over the
              DevTools protocol, which keeps its Network and Runtime domains on; this costs
              chromium memory of its own (issue 19: compare the two).
Every --interval seconds it prints a row:

  rss / fds      per process, from /proc (statm; PSS from smaps_rollup too): "stack" (this process: console, sim, control loop,
                 recorder), "policy" (the server child), "chromium" (all its processes summed),
                 "other" (the recorder's ffmpeg encoders, one per camera while an episode records,
                 and Playwright's driver with --browser playwright)
  tmp            size of Gradio's cache dir (GRADIO_TEMP_DIR, private to this run) and
                 chromium's profile (--user-data-dir); the recording dir separately (every
                 rollout is recorded and saved, as START with Record ticked does; it grows by
                 design; --no-record turns it off)
  fps            per camera, as the page shows them (playwright: window.ewamFrames, bumped once
                 per frame drawn; plain: frames served to the page) and as the stack produces
                 them (the camera's frame seq)
  cpu            per process group, % of one core over the interval (/proc/PID/stat utime + stime, and
                 the reaped children's: the encoders live one episode; proc_probes.cpu_seconds_by_group)
  latency        p50 of the chunk latencies (observation -> actions queued) in the interval
  episodes       finished rollouts and successes so far
  page memory    (--page-memory) the plain page's JS heap and DOM node / listener counts, read by a
                 visit over DevTools of a moment each row (harness.page_memory): when chromium's renderer
                 grows, is it the page's own objects and nodes or something below them?

Threads: the main thread owns the page (Playwright's sync API is single-threaded) and samples;
one worker thread runs the rollouts; the controller's chunk listener appends to a locked list.
The last line is JSON: rss_growth_mb_per_h ({process: least-squares slope of RSS after the
warm-up, MB per hour}), chromium_pss_growth_mb_per_h_by_role (which of chromium's processes
grows: browser, renderer, gpu-process, utility, ...), chromium_rss_growth_mb_per_h_by_process (each of
chromium's processes on its own, over the rows it lived in: the per-process target), stack_rss_growth_mb_per_h_by_mapping (where this
process's growth lives: glibc's main heap, its thread arenas, other anonymous maps, files;
proc_probes.rss_mb_by_mapping), page_memory_growth_per_h (--page-memory; per hour), fd_growth ({process: last - first after the warm-up}), tmp_growth_mb,
fps_first_last, latency_ms_first_last, latency_ms_drift / fps_page_drift / cpu_pct_drift (medians of the first and
last 5 intervals: one interval's p50 swings +-20% on 2 shared cores), policy_cpu_ms_per_chunk_drift (the
machine-speed canary: the policy does the same work per chunk, so its CPU per chunk rising with the
latency says the host got slower, not our code), episodes, successes, and the rows.
Targets (issue 19): RSS < 20 MB/h per process, no fd or temp growth, last fps and latency within
10% of the first.
"""
from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

from app.process_env import apply_defaults  # noqa: E402

apply_defaults()        # the console process's environment (run_demo.py's), before mujoco / gradio / pyarrow

import numpy as np  # noqa: E402

from app.control.action_queue import DEFAULT_MERGE, MERGE_RULES  # noqa: E402
from app.status import percentile  # noqa: E402
from app.heap_trim import free_mb as heap_free_mb  # noqa: E402
from app.tools.harness import page_memory  # noqa: E402
from app.tools.heap_growth import HeapGrowth  # noqa: E402
from app.tools.soak_report import heap_table, rows_table, write_plot  # noqa: E402
from app.tools.proc_probes import (MAPPING_KINDS, by_process, by_role, chromium_profile, cpu_samples,  # noqa: E402
                                   cpu_seconds_by_group, dir_size_mb, fds_by_kind,
                                   fd_count, process_groups, pss_mb, rss_mb, rss_mb_by_mapping)

PAGE_MEMORY_KEYS = ("js_heap_used_mb", "dom_nodes", "js_event_listeners")   # harness.page_memory's, fitted
LIVE_ROWS = 12                  # rows the live view shows (the last ones); all are printed at the end


# -- the summary (pure) ------------------------------------------------------------------------
def slope_per_hour(t_s: list[float], y: list[float]) -> float | None:
    """Least-squares slope of y against t (seconds), in y units per hour; None with < 2 points."""
    if len(t_s) < 2 or max(t_s) == min(t_s):
        return None
    return float(np.polyfit(np.asarray(t_s, float), np.asarray(y, float), 1)[0] * 3600.0)


def _first_last(values: list) -> list:
    present = [v for v in values if v is not None]
    return [present[0], present[-1]] if present else [None, None]


def drift(t_s: list[float], values: list, window: int = 5) -> dict:
    """A single interval's p50 swings +-20% on 2 shared cores, so beside first/last: the medians of
    the first and last `window` intervals, their change in percent, and the fitted slope per hour."""
    pairs = [(t, v) for t, v in zip(t_s, values) if v is not None]
    if len(pairs) < 2:
        return {"first": None, "last": None, "change_pct": None, "slope_per_h": None, "window": window}
    vals = [v for _, v in pairs]
    k = max(1, min(window, len(vals) // 2))
    first, last = float(np.median(vals[:k])), float(np.median(vals[-k:]))
    slope = slope_per_hour([t for t, _ in pairs], vals)
    return {"first": round(first, 1), "last": round(last, 1),
            "change_pct": None if first == 0 else round(100.0 * (last - first) / first, 1),
            "slope_per_h": None if slope is None else round(slope, 1), "window": k}


def _fit_where_present(rows: list[dict], value, digits: int = 1) -> float | None:
    """slope_per_hour of value(row) over the rows where it is not None (a process that started late)."""
    points = [(r["t_s"], v) for r in rows if (v := value(r)) is not None]
    slope = slope_per_hour([t for t, _ in points], [v for _, v in points])
    return None if slope is None else round(slope, digits)


def _last_minus_first(first: dict, last: dict) -> dict:
    return {k: last.get(k, 0) - first.get(k, 0) for k in sorted(first.keys() | last.keys())}


def summarise(rows: list[dict], warmup_s: float) -> dict:
    """rows: one dict per interval (see Soak.sample). Fits and first/last use rows with t >= warmup_s
    (all rows if none reach it, flagged in `warmup_reached`)."""
    steady = [r for r in rows if r["t_s"] >= warmup_s]
    reached = bool(steady)
    steady = steady or rows
    names = sorted({n for r in steady for n in r["rss_mb"]})
    t = [r["t_s"] for r in steady]

    def growth(key: str, keys) -> dict:        # MB per hour of rows[key][k], fitted over the steady rows
        return {k: (None if (s := slope_per_hour(t, [r.get(key, {}).get(k, 0.0) for r in steady])) is None
                    else round(s, 1)) for k in keys}
    rss_growth = growth("rss_mb", names)
    pss_growth = growth("pss_mb", names) if steady and "pss_mb" in steady[0] else {}
    roles = sorted({k for r in steady for k in r.get("chromium_pss_mb_by_role", {})})
    fds = _last_minus_first(steady[0]["fds"], steady[-1]["fds"]) if steady else {}
    fd_growth = {n: fds.get(n, 0) for n in names} if steady else {}
    cams = sorted({c for r in steady for c in r["fps_page"]})
    last = rows[-1] if rows else {}
    # chromium's processes one by one, each fitted over the rows it lived in
    per_process = {k: _fit_where_present(steady, lambda r, k=k: r.get("chromium_rss_mb_by_process", {}).get(k))
                   for k in sorted({k for r in steady for k in r.get("chromium_rss_mb_by_process", {})})}
    probed = [r for r in steady if r.get("page_memory")]       # --page-memory: the renderer's own counters
    page_growth = {k: _fit_where_present(probed, lambda r, k=k: r["page_memory"][k], digits=2)
                   for k in PAGE_MEMORY_KEYS} if probed else None
    return {
        "rss_growth_mb_per_h": rss_growth,
        "pss_growth_mb_per_h": pss_growth,
        "chromium_pss_growth_mb_per_h_by_role": growth("chromium_pss_mb_by_role", roles),
        "chromium_rss_growth_mb_per_h_by_process": per_process,
        "stack_rss_growth_mb_per_h_by_mapping": growth("stack_rss_mb_by_mapping", MAPPING_KINDS),
        "fd_growth": fd_growth,
        "chromium_fd_growth_by_kind": _last_minus_first(steady[0].get("chromium_fds_by_kind", {}),
                                                        steady[-1].get("chromium_fds_by_kind", {})) if steady else {},
        "tmp_growth_mb": round(steady[-1]["tmp_mb"] - steady[0]["tmp_mb"], 3) if steady else None,
        "tmp_growth_mb_by_dir": {d: round(steady[-1]["tmp_mb_by_dir"][d] - steady[0]["tmp_mb_by_dir"][d], 3)
                                 for d in (steady[0]["tmp_mb_by_dir"] if steady else {})},
        "fps_first_last": {"page": {c: _first_last([r["fps_page"].get(c) for r in steady]) for c in cams},
                           "stack": {c: _first_last([r["fps_stack"].get(c) for r in steady]) for c in cams}},
        "latency_ms_first_last": _first_last([r["latency_ms_p50"] for r in steady]),
        "latency_ms_drift": drift(t, [r["latency_ms_p50"] for r in steady]),
        "fps_page_drift": drift(t, [float(np.mean(list(r["fps_page"].values()))) if r["fps_page"] else None
                                    for r in steady]),
        "cpu_pct_drift": {n: drift(t, [r.get("cpu_pct", {}).get(n) for r in steady]) for n in names},
        "policy_cpu_ms_per_chunk_drift": drift(t, [r.get("policy_cpu_ms_per_chunk") for r in steady]),
        "py_objects_first_last": _first_last([r.get("py_objects") for r in steady]),
        "malloc_free_mb_first_last": _first_last([r.get("malloc_free_mb") for r in steady]),
        "page_memory_growth_per_h": page_growth,
        "page_memory_first_last": {k: _first_last([r["page_memory"][k] for r in probed]) for k in PAGE_MEMORY_KEYS}
                                  if probed else None,
        "rss_mb_first_last": {n: [round(steady[0]["rss_mb"].get(n, 0.0), 1), round(steady[-1]["rss_mb"].get(n, 0.0), 1)]
                              for n in names},
        "episodes": last.get("episodes", 0),
        "successes": last.get("successes", 0),
        "warmup_s": warmup_s,
        "warmup_reached": reached,
        "rows_fitted": len(steady),
    }


# -- the soak ----------------------------------------------------------------------------------
@dataclass
class SoakConfig:
    minutes: float = 60.0
    interval_s: float = 60.0
    warmup_s: float = 120.0
    tasks: tuple[str, ...] = ()         # cycled through in turn; empty: the tasks the checkpoint was taught
    first_seed: int = 0                 # offset into the held-out seeds
    checkpoint: str | None = None
    merge: str = DEFAULT_MERGE
    record: bool = True
    max_steps: int | None = None
    page_memory: bool = False           # read the plain page's JS heap and DOM counters over DevTools each row


class Soak:
    """Rollouts in a worker thread; `sample()` from the thread that owns the page."""

    def __init__(self, stack, page, config: SoakConfig, gradio_dir: str, recording_dir: str | None, log=print):
        self.stack, self.page, self.config, self.log = stack, page, config, log
        self.gradio_dir, self.recording_dir = gradio_dir, recording_dir
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.episodes = self.successes = 0
        self._lock = threading.Lock()
        self._latencies: list[float] = []          # since the last sample
        self._worker = threading.Thread(target=self._run, name="soak-rollouts", daemon=True)
        self._t0 = 0.0
        self._prev: tuple[float, dict, dict] | None = None   # (time, page frames, stack seqs)
        self.profile_dir: str | None = None

    def _on_chunk(self, chunk) -> None:
        with self._lock:
            self._latencies.append(float(chunk.latency_ms))

    def _counted(self, r) -> bool:
        """False for a rollout cut off by the end of the soak (discarded, not counted)."""
        return r.success or not self.stop.is_set()

    def _run(self) -> None:
        from app.tools.bench_live import recorded_rollout, taught_tasks
        from hardware.sim.tasks import EVAL_SEED_BASE
        tasks = list(self.config.tasks) or taught_tasks(self.config.checkpoint)
        i = 0
        try:
            while not self.stop.is_set():
                task = tasks[i % len(tasks)]
                seed = EVAL_SEED_BASE + self.config.first_seed + i
                r = recorded_rollout(self.stack, task, seed, record=self.config.record,
                                     max_steps=self.config.max_steps, keep=self._counted)
                if not self._counted(r):
                    break
                with self._lock:
                    self.episodes += 1
                    self.successes += int(r.success)
                self.log(f"episode {self.episodes}: {task} seed {seed}: {r.outcome} in {r.seconds:.1f} s "
                         f"({self.successes}/{self.episodes})")
                i += 1
        except BaseException as exc:         # reported by the main thread, which ends the soak
            self.error = exc

    def _counters(self) -> tuple[float, dict, dict]:
        if self.page is not None:
            frames = self.page.evaluate("() => ({...(window.ewamFrames || {})})")
        else:                                   # a plain browser: what the console served it
            frames = self.stack.console.feeds.served()
        seqs = {}
        for name, cam in self.stack.cameras.items():
            f = cam.latest()
            seqs[name] = f.seq if f is not None else 0
        return time.monotonic(), frames, seqs

    def start(self) -> None:
        if self.page is not None:
            self.page.wait_for_function("() => window.ewamFrames && Object.keys(window.ewamFrames).length > 0 && "
                                        "Object.values(window.ewamFrames).every(v => v > 0)", timeout=120_000)
        # a plain browser: live_stack waited until it pulled frames from every feed
        self.stack.controller.add_chunk_listener(self._on_chunk)
        self._t0 = time.monotonic()
        self._prev = self._counters()
        self._cpu_prev = cpu_samples(process_groups(os.getpid(), self._policy_pid()))   # at the last row
        self._worker.start()

    def finish(self) -> None:
        self.stop.set()
        if self.stack.controller is not None:
            self.stack.controller.stop()           # ends the rollout in progress; the arm holds
            self._worker.join(timeout=60)
            self.stack.controller.remove_chunk_listener(self._on_chunk)

    def _policy_pid(self) -> int | None:
        return self.stack.policy_process.pid if self.stack.policy_process is not None else None

    def sample(self) -> dict:
        now, frames, seqs = self._counters()
        t_prev, frames_prev, seqs_prev = self._prev
        self._prev = (now, frames, seqs)
        dt = max(now - t_prev, 1e-6)
        with self._lock:
            lat, self._latencies = self._latencies, []
            episodes, successes = self.episodes, self.successes
        groups = process_groups(os.getpid(), self._policy_pid())
        cpu = cpu_samples(groups)
        cpu_used = cpu_seconds_by_group(self._cpu_prev, cpu, os.getpid())
        self._cpu_prev = cpu
        if self.profile_dir is None:
            self.profile_dir = chromium_profile(groups["chromium"])
        tmp = {"gradio": dir_size_mb(self.gradio_dir), "chromium_profile": dir_size_mb(self.profile_dir)}
        return {
            "t_s": round(now - self._t0, 1),
            "rss_mb": {n: round(sum(rss_mb(p) for p in pids), 1) for n, pids in groups.items() if pids},
            "pss_mb": {n: round(sum(pss_mb(p) for p in pids), 1) for n, pids in groups.items() if pids},
            "fds": {n: sum(fd_count(p) for p in pids) for n, pids in groups.items() if pids},
            # % of one core over the interval: which process takes the CPU when latency and fps drift
            "cpu_pct": {n: round(100.0 * cpu_used.get(n, 0.0) / dt, 1) for n, pids in groups.items() if pids},
            "chromium_pss_mb_by_role": by_role(groups["chromium"], pss_mb),
            "chromium_fds_by_kind": fds_by_kind(groups["chromium"]),       # which kind its fd count grows in
            "chromium_rss_mb_by_process": by_process(groups["chromium"], rss_mb),
            "stack_rss_mb_by_mapping": rss_mb_by_mapping(os.getpid()),     # which allocator holds the growth
            "processes": {n: len(pids) for n, pids in groups.items() if pids},
            "tmp_mb": round(sum(tmp.values()), 3),
            "tmp_mb_by_dir": {k: round(v, 3) for k, v in tmp.items()},
            "recording_mb": round(dir_size_mb(self.recording_dir), 2),
            "fps_page": {c: round((frames.get(c, 0) - frames_prev.get(c, 0)) / dt, 1) for c in frames},
            "fps_stack": {c: round((seqs[c] - seqs_prev.get(c, 0)) / dt, 1) for c in seqs},
            "latency_ms_p50": percentile(lat, 50) if lat else None,
            "chunks": len(lat),
            # the policy's CPU per chunk: the same work every chunk, so when it rises the machine got
            # slower (a busy host on a shared VM), not our code: the canary for latency / fps drift
            "policy_cpu_ms_per_chunk": (round(1000.0 * cpu_used.get("policy", 0.0) / len(lat), 1)
                                        if lat and groups.get("policy") else None),
            "episodes": episodes,
            "successes": successes,
            "load_1m": round(os.getloadavg()[0], 2),
            "py_objects": len(gc.get_objects()),      # this process's objects the GC tracks: Python-level growth
            "malloc_free_mb": None if (free := heap_free_mb()) is None else round(free, 1),   # held free by glibc
            "page_memory": (page_memory(self.profile_dir, self.stack.url)
                            if self.config.page_memory and self.profile_dir else None),
        }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m app.tools.bench_soak", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=60.0, help="length of the soak after start-up (default 60)")
    p.add_argument("--interval", type=float, default=60.0, help="seconds between rows (default 60)")
    p.add_argument("--warmup", type=float, default=120.0, help="seconds left out of the fits (default 120)")
    p.add_argument("--tasks", default="taught", help="comma-separated task names to cycle through, all, or "
                   "taught (default: the tasks the checkpoint was trained on)")
    p.add_argument("--first-seed", type=int, default=0, help="offset into the held-out seeds")
    p.add_argument("--checkpoint", default=None, help="default: the shipped assets/checkpoints/sim-tiny")
    p.add_argument("--merge", choices=MERGE_RULES, default=DEFAULT_MERGE)
    p.add_argument("--max-steps", type=int, default=None, help="cap episodes at this many ticks")
    p.add_argument("--no-record", action="store_true", help="run without the recorder")
    p.add_argument("--browser", choices=["plain", "playwright"], default="plain",
                   help="plain: chromium started as an operator's browser, nothing attached; playwright: "
                        "driven over the DevTools protocol (page counters read from the page)")
    p.add_argument("--page-memory", action="store_true",
                   help="diagnostic (plain browser): every row, visit the page over DevTools for a moment and read "
                        "its JS heap and DOM node / listener counts (what in the renderer grows); no domain stays on")
    p.add_argument("--plot", metavar="PATH", help="write a PNG of RSS per process and latency over time")
    p.add_argument("--tracemalloc", type=int, default=0, metavar="N",
                   help="diagnostic: trace this process's Python allocations and report the N sites that grew "
                        "most after the warm-up (slows the rollouts; app.tools.heap_growth)")
    args = p.parse_args(argv)
    if args.minutes <= 0 or args.interval <= 0 or args.warmup < 0:
        p.error("--minutes and --interval must be > 0 and --warmup >= 0")
    if args.page_memory and args.browser != "plain":
        p.error("--page-memory reads the plain browser's page; with --browser playwright read it over Playwright")
    if args.tracemalloc < 0:
        p.error("--tracemalloc N needs N >= 0 (0: off)")
    if args.interval > args.minutes * 60:
        p.error(f"--interval {args.interval:g} s is longer than the soak ({args.minutes * 60:g} s): no row would "
                "be printed; lower --interval or raise --minutes")
    from app.tools.bench_live import resolve_tasks
    tasks = tuple(resolve_tasks(args.tasks, args.checkpoint))
    config = SoakConfig(minutes=args.minutes, interval_s=args.interval, warmup_s=args.warmup, tasks=tasks,
                        first_seed=args.first_seed, checkpoint=args.checkpoint, merge=args.merge,
                        record=not args.no_record, max_steps=args.max_steps, page_memory=args.page_memory)
    logging.basicConfig(level=logging.WARNING)
    from rich.console import Console
    from rich.live import Live
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.console import Group

    from app.tools.bench_live import live_stack
    console = Console(stderr=True)
    console.width = max(console.width, 150)     # the table has a dozen columns
    rows: list[dict] = []
    heap = HeapGrowth() if args.tracemalloc else None
    if heap is not None:
        heap.start()
    with tempfile.TemporaryDirectory(prefix="bench_soak_") as tmp:
        # Gradio's cache, private to this run (other processes on the machine share /tmp/gradio).
        # Set before the stack imports gradio: gradio reads it at import and at Blocks().
        gradio_dir = os.environ.setdefault("GRADIO_TEMP_DIR", os.path.join(tmp, "gradio"))
        with live_stack(tmp, checkpoint=config.checkpoint, merge=config.merge, browser=args.browser,
                        record=config.record, console=console, page_devtools=config.page_memory) as (stack, page):
            soak = Soak(stack, page, config, gradio_dir, stack.config.dataset, log=console.print)
            soak.start()
            end = time.monotonic() + config.minutes * 60
            progress = Progress(TextColumn("soak"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                                TimeRemainingColumn(), console=console)
            bar = progress.add_task("soak", total=config.minutes * 60)
            title = f"soak: {config.minutes:g} min, a row every {config.interval_s:g} s, warm-up {config.warmup_s:g} s"
            live = Live(Group(progress, rows_table(rows, title)), console=console, refresh_per_second=1,
                        transient=True)        # the whole table is printed once at the end
            failure = None
            try:
                with live:
                    next_row = time.monotonic() + config.interval_s
                    while time.monotonic() < end - 1e-3:
                        wait_s = max(0.0, min(next_row, end) - time.monotonic())
                        if page is not None:
                            page.wait_for_timeout(wait_s * 1000)     # Playwright's thread keeps serving the page
                        else:
                            time.sleep(min(wait_s, 1.0))
                        if time.monotonic() >= next_row - 1e-3:
                            rows.append(soak.sample())
                            next_row += config.interval_s
                            if heap is not None and not heap.marked and rows[-1]["t_s"] >= config.warmup_s:
                                heap.mark()
                            if not console.is_terminal:     # a log file: one plain line per row
                                console.print(json.dumps(rows[-1]), soft_wrap=True, markup=False)
                        progress.update(bar, completed=min(config.minutes * 60, time.monotonic() - soak._t0))
                        live.update(Group(progress, rows_table(rows[-LIVE_ROWS:], title)))
                        if (why := stack.check()) is not None:
                            failure = f"the stack failed during the soak: {why}"
                            break
                        if soak.error is not None:
                            failure = f"the rollout thread failed: {soak.error!r}"
                            break
            finally:
                soak.finish()
            if failure:
                raise SystemExit(failure)
            heap_report = heap.report(args.tracemalloc) if heap is not None else None
    console.print(rows_table(rows, title))
    summary = summarise(rows, config.warmup_s)
    summary.update(minutes=config.minutes, interval_s=config.interval_s, load_average=list(os.getloadavg()),
                   browser=args.browser,
                   cpus=os.cpu_count(), recording=config.record, rows=rows)
    if heap_report is not None:
        summary["python_heap_growth"] = heap_report
        console.print(heap_table(heap_report))
    console.print(f"RSS growth MB/h {summary['rss_growth_mb_per_h']} (stack by mapping "
                  f"{summary['stack_rss_growth_mb_per_h_by_mapping']}); fd growth {summary['fd_growth']}; "
                  f"tmp growth {summary['tmp_growth_mb']} MB; latency p50 first/last "
                  f"{summary['latency_ms_first_last']} ms (medians of the first/last {summary['latency_ms_drift']['window']} "
                  f"intervals {summary['latency_ms_drift']['first']} -> {summary['latency_ms_drift']['last']} ms); {summary['successes']}/{summary['episodes']} succeeded")
    if args.plot:
        write_plot(rows, config.warmup_s, args.plot)
        console.print(f"plot written to {args.plot}")
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)        # skip slow interpreter teardown of gradio threads; everything is closed
