"""The recording workflow without a browser: CollectionSession's S / F verdicts, the confirmation
of a flagged save, and RecordingPanel's actions (operator lock, notes, operator, targets), over a
real Recorder and dataset."""
import numpy as np

from app.collection import CollectionConfig, CollectionSession
from app.recording import Recorder
from app.recording_panel import RecordingPanel
from app.session import OperatorLock
from policy.episodes.reader import DatasetReader

from test_recording_labels import CAMS, img, spec, tick  # noqa: E402 (tests/app is on sys.path)


def record(rec, n=4, frozen=None):
    for t in range(n):
        tick(rec, t, {c: img(3 if c == frozen and t > 0 else 10 * t + i) for i, c in enumerate(CAMS)})


def test_s_saves_with_the_label_and_f_relabels_the_last_episode(tmp_path):
    rec = Recorder(tmp_path / "ds", spec())
    s = CollectionSession(rec, CollectionConfig(countdown_s=0, reset_s=0, targets={"wave": 3}))
    try:
        s.begin("wave")
        record(rec)
        assert s.verdict("success", notes="clean grasp", operator="ana") == {"saved": 0}
        assert s.status()["last_label"] == "success" and s.progress_text() == "1 of 3"
        assert s.verdict("failure") == {"labelled": 0}          # not recording: the last one
        rec.writer.wait(timeout=60)
    finally:
        rec.close()
    r = DatasetReader(tmp_path / "ds")
    e = r.episodes[0]
    assert (e.label, e.notes, e.operator) == ("failure", "clean grasp", "ana")
    assert not r.episode_table(0).success.any()
    from app.review import label_counts
    assert label_counts(r) == "1 episode: 0 ✓ · 1 ✗ · 0 ○ · 0 ⚠"


def test_a_flagged_episode_is_saved_only_when_confirmed(tmp_path):
    rec = Recorder(tmp_path / "ds", spec(), quality_limits={"max_frozen_s": 0.2})
    s = CollectionSession(rec, CollectionConfig(countdown_s=0, reset_s=0))
    try:
        s.begin("wave")
        record(rec, n=8, frozen="head")
        first = s.verdict("success")
        assert "confirm" in first and any("head: frozen" in f for f in first["confirm"])
        assert rec.status().recording and s.status()["confirm"]["label"] == "success"
        assert s.verdict("success") == {"saved": 0}             # the same key again: yes
        assert s.status()["confirm"] is None
        rec.writer.wait(timeout=60)
    finally:
        rec.close()
    e = DatasetReader(tmp_path / "ds").episodes[0]
    assert e.label == "success" and any("head: frozen" in f for f in e.quality_flags)
    assert DatasetReader(tmp_path / "ds").episode_table(0).success.tolist()[-1]


def test_the_panel_acts_for_the_operator_only(tmp_path):
    rec = Recorder(tmp_path / "ds", spec())
    s = CollectionSession(rec, CollectionConfig(countdown_s=0, reset_s=0))
    lock = OperatorLock()
    lock.take("tab-a")
    panel = RecordingPanel(s, lock, default_task=lambda: "put the red block on the plate")
    try:
        refused = panel.action("tab-b", "start", {})
        assert refused["error"] and not rec.status().recording
        r = panel.action("tab-a", "configure", {"task": "", "target": "5", "countdown_s": "0", "reset_s": "0"})
        assert r["error"] is None and r["status"]["progress"] == "0 of 5"
        assert panel.action("tab-a", "start", {"operator": "bo"})["status"]["phase"] == "recording"
        assert panel.action("tab-a", "start", {})["error"].startswith("already recording")
        record(rec)
        r = panel.action("tab-a", "failure", {"notes": "dropped it", "operator": "bo"})
        assert r["saved"] == 0 and r["status"]["last_label"] == "failure"
        assert r["status"]["progress"] == "1 of 5"
        assert panel.action("tab-a", "redo", {})["dropped"] == 0
        assert panel.status("tab-a")["phase"] == "recording"   # the redo of the same task started
        assert panel.action("tab-a", "countdown", {})["error"].startswith("unknown recording action")
        assert "countdown must be 0-600" in panel.action("tab-a", "configure", {"countdown_s": "-1"})["error"]
        record(rec)
        panel.action("tab-a", "success", {"operator": "bo"})
        rec.writer.wait(timeout=60)
    finally:
        rec.close()
    e = DatasetReader(tmp_path / "ds").episodes
    assert [(x.task, x.label, x.operator) for x in e] == [("put the red block on the plate", "success", "bo")]


def test_a_sim_camera_is_not_judged_frozen(tmp_path):
    """A still view of the simulated scene is bit-identical (no sensor noise): not a stuck camera."""
    class SimLike:
        class config:
            adapter = "sim"

        def latest(self):
            return None

    rec = Recorder(tmp_path / "ds", spec(), cameras={"head": SimLike()}, quality_limits={"max_frozen_s": 0.2})
    try:
        rec.start("wave")
        record(rec, n=8, frozen="head")
        q = rec.quality_status()
        assert q["ok"] and q["figures"]["frozen"]["head"] > 0 and q["figures"]["frozen_not_judged"] == ["head"]
        rec.discard()
    finally:
        rec.close()
