"""app.tools.harness: the plain browser's DevTools port and page_memory's short visits, on a page
served here whose DOM we know (a real headless chromium, no Playwright)."""
from __future__ import annotations

import functools
import http.server
import threading
import time

import pytest

from app.tools.harness import page_memory, plain_chromium

pytestmark = pytest.mark.browser

PAGE = """<!doctype html><title>probe</title><div id=box></div><script>
const box = document.getElementById('box');
for (let i = 0; i < 2000; i++) { const d = document.createElement('p'); d.textContent = i; box.appendChild(d); }
window.keep = new Array(200000).fill(0).map((_, i) => ({i}));          // a few MB of JS heap
</script>"""


@pytest.fixture
def served_page(tmp_path):
    (tmp_path / "index.html").write_text(PAGE)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def poll(profile: str, url: str, timeout_s: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (m := page_memory(profile, url, timeout_s=5)) and m["dom_nodes"] and m["dom_nodes"] > 2000:
            return m
        time.sleep(0.5)
    raise AssertionError(f"page_memory never saw the page's 2,000 nodes: last {m}")


def test_page_memory_reads_the_pages_heap_and_dom(served_page, tmp_path):
    profile = str(tmp_path / "profile")
    with plain_chromium(served_page, profile, devtools=True):
        m = poll(profile, served_page)
        assert 4000 < m["dom_nodes"] < 4100, m           # 2,000 <p> and their 2,000 text nodes
        assert m["js_heap_used_mb"] > 2 and m["js_heap_total_mb"] >= m["js_heap_used_mb"], m
        assert m["documents"] >= 1 and m["js_event_listeners"] >= 0, m
        assert page_memory(profile, "http://127.0.0.1:1/nothing-here") is None      # no such page: None, logged


def test_a_plain_browser_without_devtools_has_no_port(served_page, tmp_path):
    profile = str(tmp_path / "profile")
    with plain_chromium(served_page, profile):
        time.sleep(3)
        assert page_memory(profile, served_page) is None
