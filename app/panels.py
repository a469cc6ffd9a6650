"""The live parts of the page: camera tiles, the imagined-future panel and the status bar.

Each is a gr.HTML whose script pulls from a server function in a loop (see live_view.py for
why pulling). Server functions bypass Gradio's queue, so a busy queue (a review plot being
drawn) never delays a frame, and they check the login like every other route. Gradio 6.31
passes a server function's arguments as one list, and runs it on the thread pool.
"""
from __future__ import annotations

from collections.abc import Callable

import gradio as gr

from app.imagined import FuturePreviews
from app.live_view import LiveFeeds

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
CAMERA_TILE_JS = r"""
const cam = props.camera;
const img = element.querySelector('.cam-img');
const stats = element.querySelector('.cam-stats');
const err = element.querySelector('.cam-error');
const box = element.querySelector('.depth-toggle');
window.ewamFrames = window.ewamFrames || {};
window.ewamFrames[cam] = 0;
let seq = -1, depth = false, shown = [];
if (box) box.addEventListener('change', () => { depth = box.checked; seq = -1; });
const sleep = ms => new Promise(r => setTimeout(r, ms));
(async () => {
  while (element.isConnected) {
    let r;
    try { r = await server.next_frame(cam, seq, depth); }
    catch (e) { err.textContent = 'lost connection to the console server; retrying'; await sleep(1000); continue; }
    if (r.jpeg) {
      img.src = 'data:image/jpeg;base64,' + r.jpeg;
      seq = r.seq;
      window.ewamFrames[cam] += 1;
      const now = performance.now();
      shown.push(now);
      while (shown.length && now - shown[0] > 1000) shown.shift();
      stats.textContent = `${shown.length} fps shown · camera ${r.fps} fps · ${Math.round(r.age_ms)} ms old` +
                          (r.view === 'depth' ? ' · depth' : '');
    }
    err.textContent = r.error || '';
    img.classList.toggle('stale', !!r.error);
    if (r.error && !r.jpeg) await sleep(250);
  }
})();
"""

FUTURE_TEMPLATE = """
<div class="future-tile">
  <div class="cam-bar"><b>imagined future</b>
    <span class="future-info">waiting for the first action chunk (press START)</span></div>
  <div class="cam-frame"><img class="future-img" alt="imagined future"/><div class="future-step"></div>
    <div class="cam-error"></div></div>
</div>"""

# window.ewamFutures counts distinct chunk futures shown; ewamFutureChunk is the newest chunk id.
FUTURE_JS = r"""
const img = element.querySelector('.future-img');
const info = element.querySelector('.future-info');
const step = element.querySelector('.future-step');
const err = element.querySelector('.cam-error');
window.ewamFutures = 0;
window.ewamFutureChunk = -1;
let chunk = -1, frames = [], idx = 0;
const sleep = ms => new Promise(r => setTimeout(r, ms));
function show() {
  if (!frames.length) return;
  const i = idx % frames.length;
  img.src = 'data:image/jpeg;base64,' + frames[i];
  step.textContent = `+${i + 1}/${frames.length}`;
  idx += 1;
}
setInterval(show, 1000 / props.fps);
(async () => {
  while (element.isConnected) {
    let r;
    try { r = await server.next_future(chunk); }
    catch (e) { err.textContent = 'lost connection to the console server; retrying'; await sleep(1000); continue; }
    if (r.frames && r.frames.length) {
      frames = r.frames; chunk = r.chunk_id; idx = 0; show();
      window.ewamFutures += 1; window.ewamFutureChunk = chunk;
      info.textContent = `chunk #${r.chunk_id} · ${Math.round(r.latency_ms)} ms to actions`;
    }
    err.textContent = r.error || '';
  }
})();
"""

STATUS_TEMPLATE = """<div class="status-bar"><span class="status-text">connecting to the console…</span></div>"""

# Renders the dict returned by Console.status(); polled 4x per second (also the tab's heartbeat).
STATUS_JS = r"""
const bar = element.querySelector('.status-bar');
const session = () => document.querySelector('#ewam-session [data-session]')?.dataset.session || '';
const esc = s => String(s ?? '').replace(/[&<>"]/g, c => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c]));
window.ewamStatus = null;
const sleep = ms => new Promise(r => setTimeout(r, ms));
function render(s) {
  const mode = s.mode || 'idle';
  const lat = s.latency_ms || {};
  const rec = s.recording || {};
  const span = (cls, html) => `<span class="${cls}">${html}</span>`;
  const who = s.operator ? 'you are operating'
            : (s.holder ? 'watching: another tab operates' : 'watching: nobody operates');
  const saving = (rec.saving ? ` · writing ${esc(rec.saving)}` : '') +
                 (rec.encoder_backlog ? ` · encoder backlog ${esc(rec.encoder_backlog)}` : '') +
                 (rec.stale_frames ? ` · ${esc(rec.stale_frames)} late camera frames` : '');
  const parts = [
    span(`badge mode-${esc(mode)}`, esc(mode.toUpperCase()) + (s.holding ? ' · holding' : '')),
    span('field instr', `instruction: <b>${esc(s.instruction || '— none —')}</b>`),
    span('field', `chunk <b>#${esc(s.last_chunk_id ?? '–')}</b> (${esc(s.chunk_count ?? 0)} so far)` +
                  ` · queue ${esc(s.queue_length ?? 0)}`),
    span('field', `latency p50 <b>${lat.p50 ?? '–'}</b> / p95 <b>${lat.p95 ?? '–'}</b> ms`),
    span(`badge ${s.server_connected ? 'ok' : 'bad'}`,
         `policy ${s.server_connected ? 'connected' : 'NOT connected'}${s.preset ? ' · ' + esc(s.preset) : ''}`),
    span(`badge ${s.operator ? 'ok' : 'watch'}`, who),
    rec.recording ? span('badge rec', `● REC ${esc(rec.kind)} · ${esc(rec.frames)} frames`) : '',
    span('field', `episodes saved <b>${esc(rec.episodes_saved ?? '–')}</b>${saving}`),
    span('field', `safety: ${esc(s.safety || 'ok')}`),
    s.notice ? span('field notice', esc(s.notice)) : '',
  ];
  const errors = (s.errors || []).map(e => `<div class="status-error">⚠ ${esc(e)}</div>`).join('');
  bar.innerHTML = `<div class="status-row">${parts.join('')}</div>${errors}`;
}
(async () => {
  while (element.isConnected) {
    try { const s = await server.status(session()); window.ewamStatus = s; render(s); }
    catch (e) {
      bar.innerHTML = `<div class="status-error">⚠ lost connection to the console server (${esc(e)}); ` +
                      'is run_demo.py still running?</div>';
    }
    await sleep(250);
  }
})();
"""


def _named(fn: Callable, name: str) -> Callable:
    fn.__name__ = name            # Gradio routes server functions by __name__
    return fn


def camera_tile(feeds: LiveFeeds, camera: str) -> gr.HTML:
    def next_frame(args: ServerArgs) -> dict:
        name, after_seq, depth = server_args(args, 3, (None, -1, False))
        if name != camera:
            return {"camera": camera, "error": f"this tile shows '{camera}', not '{name}'"}
        return feeds.next_frame(camera, int(after_seq), bool(depth))

    return gr.HTML(value="", html_template=CAMERA_TILE_TEMPLATE, js_on_load=CAMERA_TILE_JS,
                   server_functions=[_named(next_frame, "next_frame")], camera=camera,
                   has_depth=feeds.has_depth(camera), elem_classes=["ewam-cam"], elem_id=f"cam-{camera}")


def future_panel(previews: FuturePreviews | None, fps: float) -> gr.HTML:
    def next_future(args: ServerArgs) -> dict:
        (after,) = server_args(args, 1, (-1,))
        after = int(after if after is not None else -1)
        if previews is None:
            return {"chunk_id": after, "frames": None,
                    "error": "this policy sends no imagined future (no preview)"}
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
