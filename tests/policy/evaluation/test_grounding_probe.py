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


def test_aim_counts_where_the_first_chunk_heads_among_the_blocks_on_the_table(capsys):
    """--task: in put_red_on_plate's classic scenes both blocks are candidates; the shipped checkpoint's
    every draw heads for the red one, and the shares cover every draw. A task that is not a one-arm
    pick of a block is refused with the tasks it takes."""
    from policy.evaluation.grounding_probe import main
    args = ["--checkpoint", str(REPO / "assets" / "checkpoints" / "sim-tiny"), "--scenes", "classic",
            "--first-seed", "1000000", "--seeds", "2", "--samples", "2", "--threads", "1"]
    assert main(args + ["--task", "put_red_on_plate"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["instruction"] == "put the red block on the plate"
    assert report["heads_for"] == {"red_block": 1.0} and report["named"] == 1.0
    assert report["error_nearer"] < 0.3
    assert main(args + ["--task", "put_red_on_plate", "--instruction", "put the blue block on the plate"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["heads_for"] == {"blue_block": 1.0} and report["named"] == 0.0   # named = the task's block
    with pytest.raises(SystemExit):
        main(args + ["--task", "handover_bar"])
    assert "one-arm pick-and-place of a block" in capsys.readouterr().err
