"""The recording workflow end to end: the real run_demo.py stack (numpy testing policy, MuJoCo sim,
control loop, Gradio) driven by headless chromium.

1. S / F keys label teleop episodes (countdown, reset timer, target, operator and notes on the
   way); the labels show in Review (✓ / ✗, filterable) and in the dataset (meta/episodes label,
   next.success column); a policy rollout is labelled by the sim's success check.
2. A frozen camera while recording raises the flag in the page: the head camera is a replay
   camera (hardware/replay_camera.py) playing a still video, so it keeps delivering new captures
   of an unchanged picture while the wrist cameras see the arm move; saving asks first.
Screenshots go to tests/artifacts/."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from app.tools.harness import DemoProcess, chromium_page
from policy.episodes.reader import DatasetReader

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
TESTING_POLICY = ["--policy-arg=--runner", "--policy-arg=testing"]
# Labels are under test in (1): a loaded 2-core machine may miss camera frames or ticks, which
# would (rightly) ask for confirmation before every save.
LENIENT = ["--quality-limit", "min_rate_ratio=0", "--quality-limit", "max_dropped=1000000",
           "--quality-limit", "max_repeated_ratio=1", "--quality-limit", "max_skew_ms=1000000",
           "--quality-limit", "max_state_gaps=1000000"]


def rec(page) -> dict:
    return page.evaluate("() => window.ewamRecording")


def wait_rec(page, predicate: str, timeout_s: float = 30.0) -> dict:
    page.wait_for_function(f"() => {{ const s = window.ewamRecording; return s && ({predicate}); }}",
                           timeout=timeout_s * 1000)
    return rec(page)


def wait_status(page, predicate: str, timeout_s: float = 30.0) -> dict:
    page.wait_for_function(f"() => {{ const s = window.ewamStatus; return s && ({predicate}); }}",
                           timeout=timeout_s * 1000)
    return page.evaluate("() => window.ewamStatus")


def joints(page) -> np.ndarray:
    return np.asarray(page.evaluate("() => window.ewamStatus.joints"))


def set_field(page, selector: str, value: str) -> None:
    box = page.locator(selector)
    box.fill(value)
    box.dispatch_event("change")


def open_console(page, url: str) -> None:
    page.goto(url)
    page.wait_for_function("() => window.ewamStatus && window.ewamStatus.joints && window.ewamRecording",
                           timeout=60_000)
    page.click("text=Take control")
    page.wait_for_function("() => window.ewamStatus.operator", timeout=15_000)


def start_teleop_recording(page, task: str) -> None:
    page.fill("#record-task input", task)
    page.click("#rec-start")
    wait_rec(page, "s.phase === 'recording' && s.recording && s.kind === 'teleop'", 30)
    if page.evaluate("() => window.ewamStatus.mode") != "teleop":
        page.click("#ewam-teleop")
        wait_status(page, "s.mode === 'teleop'", 10)
    page.click("#ewam-title")                  # focus off the text boxes: keys reach the page


def jog_left_waist(page, seconds: float) -> None:
    page.keyboard.press("1")
    page.keyboard.down("q")
    time.sleep(seconds)
    page.keyboard.up("q")
    time.sleep(0.8)                            # the dead-man hold


def review_options(page) -> list[str]:
    page.click("#review-episode input")
    page.wait_for_selector("[role='option']", timeout=15_000)
    # the open list marks the selected option with Gradio's own "✓" line: keep the option's text
    texts = [t.strip().split("\n")[-1].strip() for t in page.locator("[role='option']").all_inner_texts()]
    page.keyboard.press("Escape")
    return texts


def choose_filter(page, which: str) -> None:
    page.click("#review-show input")
    page.click(f"[role='option']:text-is('{which}')")
    # the list closes after the choice; until it has, a later dropdown's options would be mixed
    # with these (review_options once read this filter's "all" as the first episode)
    page.wait_for_selector("[role='option']", state="detached", timeout=15_000)


def recording_demo(dataset: Path, *args: str):
    """run_demo.py recording into `dataset` (process.dataset); it must exit cleanly afterwards."""
    process = DemoProcess(["--dataset", str(dataset), *args])
    process.dataset = dataset
    try:
        yield process
    finally:
        assert process.stop() == 0, process.log()


@pytest.fixture
def demo(tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    yield from recording_demo(tmp_path / "demos", *TESTING_POLICY, *LENIENT)


def test_s_and_f_keys_label_teleop_episodes_in_review_and_in_the_dataset(demo):
    with chromium_page() as page:
        open_console(page, demo.url)
        page.fill("#rec-operator input", "ana")
        set_field(page, "#rec-countdown input", "1.5")
        set_field(page, "#rec-reset input", "3")
        page.fill("#record-task input", "wave the left arm")
        set_field(page, "#rec-target input", "3")
        assert wait_rec(page, "s.progress === '0 of 3'")["config"]["countdown_s"] == 1.5

        # episode 0: countdown, record, S while recording = saved as success
        page.click("#rec-start")
        wait_rec(page, "s.phase === 'countdown'", 10)
        assert "recording in" in page.inner_text("#rec-phase")
        start_teleop_recording(page, "wave the left arm")
        jog_left_waist(page, 1.5)
        page.fill("#rec-notes textarea", "smooth wave")
        page.click("#ewam-title")
        before = joints(page)
        page.keyboard.press("s")
        s = wait_rec(page, "s.last_saved === 0 && s.last_label === 'success' && s.phase === 'reset'", 30)
        assert s["progress"] == "1 of 3" and "1 of 3" in page.inner_text("#rec-progress")
        assert "reset the scene" in page.inner_text("#rec-phase")
        time.sleep(0.5)
        assert abs(joints(page)[1] - before[1]) < 0.01, "S jogged joint 2 instead of saving"
        assert page.locator("#rec-notes textarea").input_value() == ""      # notes are per episode
        page.screenshot(path=str(ARTIFACTS / "recording_saved.png"), full_page=True)
        wait_rec(page, "s.phase === 'idle'", 15)                            # the reset timer ran out

        # episode 1: S saves it, then F (not recording) relabels it as a failure
        start_teleop_recording(page, "wave the left arm")
        jog_left_waist(page, 1.0)
        page.keyboard.press("s")
        wait_rec(page, "s.last_saved === 1 && !s.recording", 30)
        page.keyboard.press("f")
        wait_rec(page, "s.last_saved === 1 && s.last_label === 'failure'", 15)

        # Backspace while recording: discard and count down to redo it; Discard cancels
        start_teleop_recording(page, "wave the left arm")
        page.keyboard.press("Backspace")
        s = wait_rec(page, "s.message.includes('discarded: redo it')", 10)
        assert s["phase"] in ("countdown", "recording") and s["last_saved"] == 1   # the saved ones stay
        page.click("#rec-discard")
        s = wait_rec(page, "s.phase === 'idle' && !s.recording", 10)
        assert s["progress"] == "2 of 3"

        # a policy rollout: labelled by the sim's success check when STOP ends it
        saved = page.evaluate("() => window.ewamStatus.recording.episodes_saved")
        page.fill("#instruction input, #instruction textarea", "put the red block on the plate")
        page.click("#ewam-start")
        page.wait_for_function("() => window.ewamStatus.mode === 'policy' || "
                               "document.querySelector('#ewam-run-anyway')?.offsetParent", timeout=30_000)
        if page.evaluate("() => window.ewamStatus.mode") != "policy":
            page.click("#ewam-run-anyway")             # an unfamiliar instruction for the testing policy
        wait_status(page, "s.mode === 'policy' && s.recording.frames >= 5", 60)
        page.click("#ewam-stop")
        wait_status(page, f"s.recording.episodes_saved > {saved} && !s.recording.saving", 60)
        wait_rec(page, "s.last_saved === 2 && s.last_label === 'failure'", 15)

        wait_status(page, "s.recording.episodes_saved === 3 && !s.recording.saving", 60)
        reader = DatasetReader(demo.dataset)
        e = reader.episodes
        assert [(x.label, x.has_imagined) for x in e] == [("success", False), ("failure", False), ("failure", True)]
        assert (e[0].operator, e[0].notes, e[0].task) == ("ana", "smooth wave", "wave the left arm")
        ok, bad = reader.episode_table(0).success, reader.episode_table(1).success
        assert ok[-1] and not ok[:-1].any(), "next.success of a successful demo: True on its last frame"
        assert not bad.any()

        # Review: ✓ / ✗ in the list, and the label filter
        page.click("button[role='tab']:has-text('Review')")
        page.click("#review-refresh")
        page.wait_for_function("() => document.querySelector('#review-summary').innerText.includes('Episode 2')",
                               timeout=60_000)
        options = review_options(page)
        assert any(o.startswith("#0 ✓") for o in options) and any(o.startswith("#1 ✗") for o in options), options
        choose_filter(page, "success")
        page.wait_for_function("() => document.querySelector('#review-summary').innerText.includes('Episode 0')",
                               timeout=60_000)
        assert [o.split(" ")[0] for o in review_options(page)] == ["#0"]
        assert "✓ success" in page.inner_text("#review-summary") and "ana" in page.inner_text("#review-summary")
        choose_filter(page, "failure")
        page.wait_for_function("() => document.querySelector('#review-summary').innerText.includes('Episode 2')",
                               timeout=60_000)
        assert sorted(o.split(" ")[0] for o in review_options(page)) == ["#1", "#2"]
        page.screenshot(path=str(ARTIFACTS / "recording_review_filter.png"), full_page=True)


def still_video(path: Path, width: int = 320, height: int = 240, frames: int = 60) -> Path:
    """A lossless video of one unchanging picture: what a stuck sensor delivers."""
    import av
    yy, xx = np.mgrid[0:height, 0:width]
    picture = np.stack([(xx * 255 // width), (yy * 255 // height), ((xx + yy) % 64) * 4], -1).astype(np.uint8)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv444p"
        for _ in range(frames):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        out.mux(stream.encode(None))
    return path


@pytest.fixture
def frozen_demo(tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    video = still_video(tmp_path / "stuck.mkv")
    rig = tmp_path / "rig.toml"
    rig.write_text(f"""
[[cameras]]
name = "head"
adapter = "replay"
source = "{video}"
options = {{ loop = true }}

[[cameras]]
name = "left_wrist"
adapter = "sim"

[[cameras]]
name = "right_wrist"
adapter = "sim"
""")
    yield from recording_demo(tmp_path / "demos", "--rig", str(rig), *TESTING_POLICY)


def test_a_frozen_camera_during_recording_raises_the_flag_in_the_page(frozen_demo):
    with chromium_page() as page:
        open_console(page, frozen_demo.url)
        set_field(page, "#rec-countdown input", "0")
        set_field(page, "#rec-reset input", "0")
        start_teleop_recording(page, "wave the left arm")
        assert page.locator("#rec-flag").is_hidden() or "frozen" not in page.inner_text("#rec-flag")
        page.keyboard.press("1")
        page.keyboard.down("q")                  # the left arm moves: its wrist camera's picture changes
        try:
            page.wait_for_function("() => { const f = document.querySelector('#rec-flag');"
                                   " return f && !f.hidden && /head: frozen for \\d/.test(f.innerText); }",
                                   timeout=30_000)
        finally:
            page.keyboard.up("q")
        flag = page.inner_text("#rec-flag")
        assert flag.startswith("⚠ FLAGGED") and "head: frozen for" in flag
        assert "left_wrist: frozen" not in flag and "right_wrist: frozen" not in flag
        # the status bar says it too (it refreshes on its own poll, a moment after the panel)
        page.wait_for_function("() => /head: frozen/.test(document.querySelector('#ewam-status').innerText)",
                               timeout=10_000)
        page.screenshot(path=str(ARTIFACTS / "recording_frozen_flag.png"), full_page=True)

        page.keyboard.press("s")                 # saving a flagged episode asks first
        wait_rec(page, "s.confirm && s.confirm.label === 'success'", 10)
        assert page.locator("#rec-confirm").is_visible()
        assert "Save this flagged episode as success" in page.inner_text("#rec-confirm")
        time.sleep(0.5)
        assert rec(page)["recording"], "a flagged episode was saved without confirmation"
        page.keyboard.press("Enter")
        wait_rec(page, "s.last_saved === 0 && !s.recording && !s.confirm", 30)
        wait_status(page, "s.recording.episodes_saved === 1 && !s.recording.saving", 60)

        e = DatasetReader(frozen_demo.dataset).episodes[0]
        assert e.label == "success" and any(f.startswith("head: frozen for") for f in e.quality_flags)
        assert e.quality["frozen"]["head"] > 5 and e.quality["frozen_not_judged"] == ["left_wrist", "right_wrist"]
        page.click("button[role='tab']:has-text('Review')")
        choose_filter(page, "flagged")
        page.wait_for_function("() => document.querySelector('#review-summary').innerText.includes('head: frozen')",
                               timeout=60_000)
        assert review_options(page)[0].startswith("#0 ✓ ⚠")
