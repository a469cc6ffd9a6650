"""Knowing when the policy is lost, in the browser: the real run_demo.py stack (shipped sim-tiny
checkpoint) and headless chromium. An unfamiliar instruction asks for one more click before
START, with the reason in words (a word never taught, an object the scene does not show); a
familiar one starts at once; the imagination-surprise panel fills in while it runs."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from app.tools.harness import DemoProcess, chromium_page

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
BOX = "#instruction input, #instruction textarea"


@pytest.fixture(scope="module")
def page():
    demo = DemoProcess(["--no-record"])
    try:
        with chromium_page() as page:
            page.goto(demo.url)
            page.wait_for_function("() => window.ewamStatus && window.ewamStatus.joints", timeout=60_000)
            # the page's load event fills the box with the scene's instruction: wait for it, or it
            # overwrites what the test types next
            page.wait_for_function("() => { const b = document.querySelector('#instruction textarea, "
                                   "#instruction input'); return b && b.value.length > 0; }", timeout=60_000)
            yield page
    finally:
        assert demo.stop() == 0, demo.log()


def mode(page) -> str:
    return page.evaluate("() => window.ewamStatus.mode")


def test_unfamiliar_instruction_asks_before_start(page):
    page.fill(BOX, "wave hello")
    page.wait_for_selector("#familiarity .familiarity.bad", timeout=30_000)
    assert "closest" in page.inner_text("#familiarity")
    page.click("#ewam-start")
    page.wait_for_selector("text=The policy has not been taught anything like this", timeout=30_000)
    assert "Closest:" in page.inner_text("#familiarity-confirm") and "Run anyway" in page.inner_text("#familiarity-confirm")
    time.sleep(1.0)
    assert mode(page) == "idle", "START ran an unfamiliar instruction without asking"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "console_unfamiliar.png"), full_page=True)
    page.click("#ewam-run-cancel")
    page.wait_for_selector("#familiarity-confirm", state="hidden", timeout=10_000)
    assert mode(page) == "idle"


def test_an_object_the_scene_does_not_show_is_named_in_the_confirmation(page):
    # the demo's scene is put_red_on_plate (red block, blue block, plate): taught words, no green block
    page.fill(BOX, "put the green block on the plate")
    page.wait_for_selector("#familiarity .familiarity.bad >> text=There is no green block on the table",
                           timeout=30_000)
    page.click("#ewam-start")
    page.wait_for_selector("#familiarity-confirm >> text=There is no green block on the table", timeout=30_000)
    assert "Run anyway" in page.inner_text("#familiarity-confirm")
    assert mode(page) == "idle"
    page.fill(BOX, "put the orange block on the plate")     # never taught orange: the server says so
    page.wait_for_selector('#familiarity .familiarity.bad >> text=never taught the colour "orange"', timeout=30_000)
    page.click("#ewam-run-cancel")
    page.wait_for_selector("#familiarity-confirm", state="hidden", timeout=10_000)
    assert mode(page) == "idle"


def test_familiar_instruction_starts_without_asking_and_shows_surprise(page):
    page.fill(BOX, "put the red cube on the dish")          # a paraphrase it was not trained on
    page.wait_for_selector("#familiarity .familiarity.ok", timeout=30_000)
    page.click("#ewam-start")
    page.wait_for_function("() => window.ewamStatus.mode === 'policy'", timeout=15_000)
    assert not page.is_visible("#familiarity-confirm")
    # the first surprise comes back 16 ticks after the first chunk's observation
    page.wait_for_selector("#surprise-panel .surprise-spark", timeout=180_000)
    state = page.get_attribute("#surprise-panel .surprise-panel", "data-state")
    assert state in ("on track", "surprised", "lost")
    page.screenshot(path=str(ARTIFACTS / "console_surprise.png"), full_page=True)
    page.click("#ewam-stop")
