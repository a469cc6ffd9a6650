"""policy.evaluation.grounding_probe: the shipped checkpoint, in the scenes it was taught, goes for the
block the instruction names; the probe's numbers come from the real runner and the real sim."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_shipped_checkpoint_goes_for_the_named_block(capsys):
    from policy.evaluation.grounding_probe import main
    assert main(["--checkpoint", str(REPO / "assets" / "checkpoints" / "sim-tiny"), "--scenes", "classic",
                 "--first-seed", "1000000", "--seeds", "2", "--samples", "2", "--threads", "1"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["seeds"] == 2 and report["samples"] == 2
    assert report["expert_gap"] > 0.3                 # red and blue are in different places
    assert report["wrong_block"] == 0.0               # every draw heads for the named block
    assert report["ratio"] > 0.8 and report["error"] < 0.2
