"""The HTTP route the camera tiles pull frames from: GET /ewam/live/{camera}?after=SEQ&depth=0|1.

A frame travels as the JPEG's own bytes (`image/jpeg`, its facts in the X-Ewam-Frame header as
JSON); "no new frame" and camera errors travel as a small JSON body. Issue 19: the frames used
to go through a Gradio server function as base64 inside JSON, which costs the console a base64
encode and a JSON dump per frame and leaves the page ~1.3 MB/s of JS strings to parse and
collect; over an hour the page's V8 heap grew its young generation once and its renderer stepped
up ~50 MB. As bytes, a frame goes socket -> Blob -> createImageBitmap and never becomes a string.

The route checks the login like Gradio's own routes (the same cookie, the same token table), so
with --auth nothing is served before the operator logs in. Sync endpoint: FastAPI runs it on its
thread pool, where a pull may wait up to LiveViewConfig.max_wait_s for a newer frame.
"""
from __future__ import annotations

import json

import fastapi
from fastapi.responses import JSONResponse, Response

from app.live_view import LiveFeeds

LIVE_PATH = "/ewam/live"
FRAME_HEADER = "X-Ewam-Frame"
NO_STORE = {"Cache-Control": "no-store"}


def logged_in(app: fastapi.FastAPI, request: fastapi.Request) -> bool:
    """Gradio's login check (gradio/routes.py get_current_user + login_check), for a route of ours."""
    auth, dependency = getattr(app, "auth", None), getattr(app, "auth_dependency", None)
    if auth is None and dependency is None:       # no --auth (or a plain FastAPI app, as in the tests)
        return True
    if dependency is not None:                    # mount_gradio_app(auth_dependency=...): a sync one here
        return dependency(request) is not None
    token = (request.cookies.get(f"access-token-{app.cookie_id}")
             or request.cookies.get(f"access-token-unsecure-{app.cookie_id}"))
    return app.tokens.get(token) is not None


def frame_response(reply: dict) -> Response:
    """LiveFeeds.next_frame's reply -> the JPEG with its facts in a header, or the JSON of the error."""
    jpeg = reply.get("jpeg")
    if not jpeg:
        return JSONResponse(reply, headers=NO_STORE)
    facts = {k: v for k, v in reply.items() if k != "jpeg"}
    return Response(content=jpeg, media_type="image/jpeg",
                    headers={**NO_STORE, FRAME_HEADER: json.dumps(facts, separators=(",", ":"))})


def add_live_route(app: fastapi.FastAPI, feeds: LiveFeeds) -> None:
    """Serve every camera of `feeds` at LIVE_PATH/{camera} on the console's (launched) Gradio app."""
    def live_frame(camera: str, request: fastapi.Request, after: int = -1, depth: int = 0) -> Response:
        if not logged_in(app, request):
            return JSONResponse({"camera": camera, "error": "not logged in: reload the page and log in"},
                                status_code=401, headers=NO_STORE)
        return frame_response(feeds.next_frame(camera, after, bool(depth)))

    app.add_api_route(LIVE_PATH + "/{camera}", live_frame, methods=["GET"], include_in_schema=False)
