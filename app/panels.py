"""The live parts of the page: camera tiles, the imagined-future panel and the status bar.

Each is a gr.HTML whose script pulls in a loop (see live_view.py for why pulling): the camera
tiles from the console's own HTTP route (app/live_route.py: JPEG bytes, not base64 in JSON), the
future panel and the status bar from server functions. Both bypass Gradio's queue, so a busy
queue (a review plot being drawn) never delays a frame, and both check the login like every
other route. Gradio 6.31 passes a server function's arguments as one list, and runs it on the
thread pool.
"""
from __future__ import annotations

from collections.abc import Callable

import gradio as gr

from app.imagined import FuturePreviews
from app.live_route import LIVE_PATH
from app.live_view import LiveFeeds
from app.static_files import script

# Gradio hands a server function's arguments to Python as one list, or the bare value when
# the script passed a single argument.
ServerArgs = object


def server_args(args: ServerArgs, n: int, defaults: tuple) -> list:
    """The n arguments a page script passed, padded with defaults."""
    values = list(args) if isinstance(args, (list, tuple)) else [args]
    return (values + list(defaults[len(values):]))[:n]

CAMERA_TILE_TEMPLATE = """
<div class="cam-tile">
  <div class="cam-bar"><b>${camera}</b><span class="cam-stats">connecting…</span>
    ${has_depth ? '<label class="cam-depth"><input type="checkbox" class="depth-toggle"> depth</label>' : ''}</div>
  <div class="cam-frame"><img class="cam-img" alt="${camera} camera"/><div class="cam-error"></div></div>
</div>"""

# window.ewamFrames[camera] counts distinct frames shown: the benchmark and tests read it.
CAMERA_TILE_JS = script("frame_canvas.js") + script("camera_tile.js")

FUTURE_TEMPLATE = """
<div class="future-tile">
  <div class="cam-bar"><b>imagined future</b>
    <span class="future-info">waiting for the first action chunk (press START)</span></div>
  <div class="cam-frame"><img class="future-img" alt="imagined future"/><div class="future-step"></div>
    <div class="cam-error"></div></div>
</div>"""

# window.ewamFutures counts distinct chunk futures shown; ewamFutureChunk is the newest chunk id.
FUTURE_JS = script("frame_canvas.js") + script("future.js")

STATUS_TEMPLATE = """<div class="status-bar"><span class="status-text">connecting to the console…</span></div>"""

# Renders the dict returned by Console.status(); polled 4x per second (also the tab's heartbeat).
STATUS_JS = script("status_bar.js")


def _named(fn: Callable, name: str) -> Callable:
    fn.__name__ = name            # Gradio routes server functions by __name__
    return fn


def camera_tile(feeds: LiveFeeds, camera: str) -> gr.HTML:
    """A tile that pulls `camera`'s frames from app/live_route.py (the console adds the route at launch)."""
    return gr.HTML(value="", html_template=CAMERA_TILE_TEMPLATE, js_on_load=CAMERA_TILE_JS, camera=camera,
                   live_path=LIVE_PATH.lstrip("/"), has_depth=feeds.has_depth(camera),
                   elem_classes=["ewam-cam"], elem_id=f"cam-{camera}")


def future_panel(previews: FuturePreviews | None, fps: float) -> gr.HTML:
    def next_future(args: ServerArgs) -> dict:
        (after,) = server_args(args, 1, (-1,))
        after = int(after if after is not None else -1)
        if previews is None:
            return {"chunk_id": after, "frames": None,
                    "error": "this policy imagines no future"}
        return previews.next_future(after)

    return gr.HTML(value="", html_template=FUTURE_TEMPLATE, js_on_load=FUTURE_JS,
                   server_functions=[_named(next_future, "next_future")], fps=float(fps),
                   elem_classes=["ewam-cam"], elem_id="imagined-future")


def status_bar(status: Callable[[str], dict]) -> gr.HTML:
    def status_fn(args: ServerArgs) -> dict:
        (session,) = server_args(args, 1, ("",))
        return status(str(session or ""))

    return gr.HTML(value="", html_template=STATUS_TEMPLATE, js_on_load=STATUS_JS,
                   server_functions=[_named(status_fn, "status")], elem_id="ewam-status")


def session_marker() -> gr.HTML:
    """Holds this tab's Gradio session id (filled by demo.load) for the scripts' server calls."""
    return gr.HTML(value="", html_template='<span data-session="${value}"></span>', js_on_load=None,
                   elem_id="ewam-session")
