"""app.tools.bench_soak: the slope fit and summary on made-up rows, and one short real soak
(run_demo's stack, headless chromium, rollouts) whose JSON last line must carry every key with sane values."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from app.tools import bench_soak
from app.tools.harness import REPO

KEYS = {"rss_growth_mb_per_h", "fd_growth", "tmp_growth_mb", "fps_first_last", "latency_ms_first_last",
        "episodes", "successes", "latency_ms_drift", "fps_page_drift", "stack_rss_growth_mb_per_h_by_mapping", "cpu_pct_drift",
        "policy_cpu_ms_per_chunk_drift"}


def row(t: float, rss: float, fds: int, tmp: float = 1.0, latency: float | None = 100.0, fps: float = 20.0) -> dict:
    return {"t_s": t, "rss_mb": {"stack": rss, "policy": 500.0}, "fds": {"stack": fds, "policy": 20},
            "tmp_mb": tmp, "tmp_mb_by_dir": {"gradio": tmp}, "fps_page": {"head": fps}, "fps_stack": {"head": 30.0},
            "latency_ms_p50": latency, "episodes": int(t // 10), "successes": int(t // 20)}


def test_slope_per_hour_fits_a_line_and_refuses_too_few_points():
    t = [0, 60, 120, 180]
    assert bench_soak.slope_per_hour(t, [100 + x / 60 for x in t]) == pytest.approx(60.0)   # 1 MB/min
    assert bench_soak.slope_per_hour(t, [5, 5, 5, 5]) == pytest.approx(0.0, abs=1e-9)
    assert bench_soak.slope_per_hour([0], [1]) is None


def test_summary_leaves_out_the_warmup_and_has_every_key():
    rows = [row(0, 1000, 99, tmp=9, latency=5000)]                     # start-up: huge, left out
    rows += [row(t, 400 + t / 3600 * 10, 50 + (t >= 300), latency=None if t == 120 else 100 + t / 60)
             for t in range(120, 601, 60)]
    s = bench_soak.summarise(rows, warmup_s=120)
    assert KEYS <= s.keys()
    assert s["rss_growth_mb_per_h"]["stack"] == pytest.approx(10.0, abs=0.1)
    assert s["rss_growth_mb_per_h"]["policy"] == pytest.approx(0.0, abs=0.1)
    assert s["fd_growth"] == {"stack": 1, "policy": 0}
    assert s["tmp_growth_mb"] == 0
    assert s["latency_ms_first_last"] == [103.0, 110.0]                # the first fitted row had no chunk
    assert s["fps_first_last"]["page"]["head"] == [20.0, 20.0]
    assert s["episodes"] == 60 and s["successes"] == 30
    assert s["warmup_reached"] and s["rows_fitted"] == len(rows) - 1


def test_summary_fits_the_pages_own_counters_when_probed():
    rows = [dict(row(t, 400, 50), page_memory={"js_heap_used_mb": 20 + t / 360, "dom_nodes": 900 + t // 60,
                                               "js_event_listeners": 150}) for t in range(120, 601, 60)]
    rows[3]["page_memory"] = None                          # a visit that could not read the page: left out
    s = bench_soak.summarise(rows, warmup_s=120)
    assert s["page_memory_growth_per_h"]["js_heap_used_mb"] == pytest.approx(10.0, abs=0.01)
    assert s["page_memory_growth_per_h"]["dom_nodes"] == pytest.approx(60.0, abs=0.01)
    assert s["page_memory_growth_per_h"]["js_event_listeners"] == pytest.approx(0.0, abs=1e-6)
    assert s["page_memory_first_last"]["dom_nodes"] == [902, 910]
    assert bench_soak.summarise([row(t, 400, 50) for t in (120, 180)], 120)["page_memory_growth_per_h"] is None


def test_chromium_processes_are_fitted_one_by_one_over_the_rows_they_lived():
    rows = [dict(row(t, 400, 50), chromium_rss_mb_by_process={"renderer-7": 250 + t / 360, "browser-5": 130.0,
                                                              **({"utility-9": 90.0} if t >= 300 else {})})
            for t in range(120, 601, 60)]
    g = bench_soak.summarise(rows, warmup_s=120)["chromium_rss_growth_mb_per_h_by_process"]
    assert g["renderer-7"] == pytest.approx(10.0, abs=0.01) and g["browser-5"] == pytest.approx(0.0, abs=1e-6)
    assert g["utility-9"] == pytest.approx(0.0, abs=1e-6)      # a late service: its own flat series, not a step


def test_drift_compares_window_medians_not_single_intervals():
    t = list(range(0, 1200, 60))
    noisy = [100.0] * 20
    noisy[0], noisy[-1] = 150.0, 60.0                     # one loud interval at each end
    d = bench_soak.drift(t, noisy)
    assert d["first"] == d["last"] == 100.0 and d["change_pct"] == 0.0 and d["window"] == 5
    rising = [100.0 + i for i in range(20)]               # +1 per minute: a real drift
    d = bench_soak.drift(t, rising)
    assert d["change_pct"] == pytest.approx(14.7, abs=0.1) and d["slope_per_h"] == pytest.approx(60.0)
    assert bench_soak.drift([0, 60], [None, 5.0])["first"] is None     # too few intervals to say


def test_the_machine_speed_canary_is_summarised_like_the_latency():
    rows = [dict(row(t, 400, 50), policy_cpu_ms_per_chunk=None if t == 120 else 50.0 + (t >= 900) * 15.0)
            for t in range(120, 1201, 60)]
    d = bench_soak.summarise(rows, warmup_s=120)["policy_cpu_ms_per_chunk_drift"]
    assert d["first"] == 50.0 and d["last"] == 65.0 and d["change_pct"] == 30.0


def test_bad_flags_are_refused_with_the_fix(capsys):
    with pytest.raises(SystemExit):
        bench_soak.main(["--minutes", "0.1", "--interval", "60"])
    assert "lower --interval" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench_soak.main(["--browser", "playwright", "--page-memory"])
    assert "plain browser" in capsys.readouterr().err


@pytest.mark.browser
@pytest.mark.slow
def test_short_real_soak(tmp_path):
    plot = tmp_path / "soak.png"
    env = dict(os.environ, MUJOCO_GL="osmesa", PYOPENGL_PLATFORM="osmesa", HF_HUB_OFFLINE="1",
               GRADIO_ANALYTICS_ENABLED="False")
    env.pop("GRADIO_TEMP_DIR", None)
    out = subprocess.run([sys.executable, "-m", "app.tools.bench_soak", "--minutes", "0.35", "--interval", "5",
                          "--warmup", "5", "--plot", str(plot), "--page-memory"], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=540)
    assert out.returncode == 0, out.stderr[-4000:]
    s = json.loads(out.stdout.strip().splitlines()[-1])
    assert KEYS <= s.keys()
    assert set(s["rss_growth_mb_per_h"]) >= {"stack", "policy", "chromium"}
    assert any(k.startswith("renderer-") for k in s["chromium_rss_growth_mb_per_h_by_process"]), s.keys()
    for r in s["rows"]:
        assert all(r["rss_mb"][n] > 0 for n in ("stack", "policy", "chromium")), r
        assert all(r["fds"][n] > 0 and r["pss_mb"][n] > 0 for n in ("stack", "policy", "chromium")), r
    for r in s["rows"][1:]:             # the first row has no interval behind it
        assert r["cpu_pct"]["stack"] > 0 and r["cpu_pct"]["policy"] > 0, r["cpu_pct"]
    # the machine-speed canary: a sim-tiny chunk costs the policy process milliseconds, not seconds
    canary = [r["policy_cpu_ms_per_chunk"] for r in s["rows"][1:] if r["chunks"]]
    assert canary and all(1 < c < 2000 for c in canary), canary
    assert s["episodes"] >= 1 and 0 <= s["successes"] <= s["episodes"]
    assert all(v[1] is not None and v[1] > 0 for v in s["fps_first_last"]["page"].values()), s["fps_first_last"]
    assert set(s["fps_first_last"]["page"]) == {"head", "left_wrist", "right_wrist"}
    assert s["latency_ms_first_last"][0] is not None and s["latency_ms_first_last"][0] > 0
    assert s["recording"] and s["rows"][-1]["recording_mb"] > 0                 # rollouts were saved
    assert s["browser"] == "plain"                # an operator's chromium, no DevTools session attached
    assert plot.stat().st_size > 10_000
    # --page-memory: the console page's own counters, read over DevTools each row (a Gradio page with
    # the live tiles, status bar and panels holds thousands of nodes and megabytes of JS heap)
    pages = [r["page_memory"] for r in s["rows"] if r["page_memory"]]
    assert len(pages) >= len(s["rows"]) - 1, [r["page_memory"] for r in s["rows"]]
    assert all(p["dom_nodes"] > 500 and p["js_heap_used_mb"] > 1 for p in pages), pages
    assert set(s["page_memory_growth_per_h"]) == {"js_heap_used_mb", "dom_nodes", "js_event_listeners"}
