"""policy.evaluation.monitors through the console's control core: a real server child, the sim
clock with a live latency, the console's SurpriseMonitor; every chunk whose imagined steps fell
inside the episode gets its surprise, including chunks that arrived after their first step."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
CHECKPOINT = REPO / "assets" / "checkpoints" / "sim-tiny"


@pytest.mark.skipif(not (CHECKPOINT / "config.json").exists(), reason="no shipped checkpoint")
def test_monitors_score_every_chunk_through_the_control_core(tmp_path):
    out = tmp_path / "monitors.json"
    run = subprocess.run([sys.executable, "-m", "policy.evaluation.monitors", "--checkpoint", str(CHECKPOINT),
                          "--episodes-per-task", "1", "--tasks", "put_red_on_plate", "--conditions", "ordinary,moved",
                          "--max-steps", "60", "--latency-ms", "250,400", "--json-out", str(out)],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(out.read_text())
    assert summary["clock"] == "sim" and summary["latency_ms"] == "250,400"
    episodes = {e["condition"]: e for e in summary["episodes"]}
    assert set(episodes) == {"ordinary", "moved"}
    for e in episodes.values():
        inside = [t for t in e["chunk_ticks"] if t + 16 <= e["steps"]]   # imagined steps 2..16 all happened
        assert len(inside) >= 3
        assert sorted(e["surprise_ticks"]) == e["surprise_ticks"]
        assert set(inside) <= set(e["surprise_ticks"]), (inside, e["surprise_ticks"])
        assert all(v >= 0 for v in e["surprise"])
    # the push (1.2 s in) is seen: the moved episode's first-5-s score is above the undisturbed one's
    assert episodes["moved"]["score"] > episodes["ordinary"]["score"]
