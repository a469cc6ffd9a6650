"""policy.training.plot_log: a training log becomes a loss plot; a missing or broken log says why."""
from __future__ import annotations

import json

import pytest

from policy.training.plot_log import global_steps, main, read_log


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_stages_follow_each_other_on_one_axis(tmp_path):
    rows = [{"stage": "codec", "step": 10, "rec": 1.0}, {"stage": "codec", "step": 20, "rec": 0.5},
            {"stage": "video", "step": 10, "video": 0.3, "action": 2.0},
            {"stage": "joint", "step": 10, "video": 0.1, "action": 0.1},
            {"stage": "joint", "step": 5, "video": 0.1, "action": 0.1}]      # resumed: step 5 again
    assert global_steps(rows) == [10, 20, 30, 40, 35]
    _write(tmp_path / "train_log.jsonl", rows)
    out = main([str(tmp_path)])
    assert out == tmp_path / "curves.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_missing_or_broken_logs_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="policy.train"):
        read_log(tmp_path / "train_log.jsonl")
    (tmp_path / "train_log.jsonl").write_text('{"stage": "codec", "step": 1, "rec": 1.0}\n{"stage": "co')
    with pytest.raises(ValueError, match=":2 is not JSON"):
        read_log(tmp_path / "train_log.jsonl")
