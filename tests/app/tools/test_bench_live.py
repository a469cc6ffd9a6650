"""app.tools.bench_live: its browser choice and default tasks. The benchmark itself runs through the same live_stack in
tests/app/tools/test_bench_soak.py's short real soak (plain chromium) and in the note's measurements."""
from __future__ import annotations

import argparse

import pytest

from app.tools import bench_live


def test_an_unknown_browser_is_refused_before_anything_starts(tmp_path):
    with pytest.raises(ValueError, match="choose one of none, plain, playwright"):
        with bench_live.live_stack(str(tmp_path), browser="firefox"):
            pass
    assert not any(tmp_path.iterdir())          # no stack was started, nothing recorded


def test_a_bare_browser_flag_is_an_operators_plain_chromium(monkeypatch):
    parsed = []
    real = argparse.ArgumentParser.parse_args

    def parse_only(self, argv=None, namespace=None):      # stop before the stack starts
        parsed.append(real(self, argv, namespace))
        raise SystemExit(0)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_only)
    for argv, want in ((["--browser"], "plain"), ([], "none"), (["--browser", "playwright"], "playwright")):
        with pytest.raises(SystemExit):
            bench_live.main(argv)
        assert parsed[-1].browser == want


def test_the_default_tasks_are_the_ones_the_checkpoint_was_taught(tmp_path):
    from hardware.sim.tasks import TASKS, TRAINING_TASKS
    shipped = bench_live.taught_tasks(None)           # assets/checkpoints/sim-tiny's training instructions
    assert shipped == ["handover_bar", "put_blue_on_plate", "put_red_on_plate", "stack_green_on_purple"]
    assert set(shipped) < set(TASKS)                   # evaluation-only and untrained tasks are left out
    assert bench_live.taught_tasks(str(tmp_path)) == list(TRAINING_TASKS)   # no config.json: every training task
    (tmp_path / "config.json").write_text('{"training": {"instructions": ["Put the blue block on the plate "]}}')
    assert bench_live.taught_tasks(str(tmp_path)) == ["put_blue_on_plate"]
    assert bench_live.resolve_tasks("all", None) == sorted(TASKS)
    assert bench_live.resolve_tasks(" put_red_on_plate, handover_bar", None) == ["put_red_on_plate", "handover_bar"]
    with pytest.raises(SystemExit, match=r"unknown task\(s\) \['put_red'\].*or taught, all"):
        bench_live.resolve_tasks("put_red", None)


def test_the_summary_splits_the_latency_by_stage():
    import numpy as np

    from app.control.episode import Rollout
    from app.control.records import ChunkRecord

    def chunk(total: float, inference: float) -> ChunkRecord:
        return ChunkRecord(0, np.zeros((16, 14), np.float32), 0, total,
                           {"network": 1.0, "queue": total - inference - 1.0, "inference": inference}, "", 0)
    a = Rollout("put_red_on_plate", 1, "", "succeeded", 60, chunks=[chunk(100, 40), chunk(120, 50)])
    b = Rollout("put_red_on_plate", 2, "", "timed out", 400, chunks=[chunk(300, 60)])
    s = bench_live.summarise({"put_red_on_plate": [a, b]}, "rtc")
    assert s["success"] == {"put_red_on_plate": 0.5}
    assert s["latency_ms_p50"] == 120.0
    assert s["latency_ms_p50_by_stage"] == {"network": 1.0, "queue": 69.0, "inference": 50.0}   # resize etc. absent
