// The imagined-future panel (app/panels.py future_panel): pulls each chunk's future frames from
// server.next_future and plays them at props.fps. In scope: element, props, server.
// Each chunk's frames are decoded once (createImageBitmap) and replayed on a canvas
// (frame_canvas.js says why); the previous chunk's bitmaps are closed.
const canvas = canvasFor(element.querySelector('.future-img'));
const ctx = canvas.getContext('2d');
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
  drawFrame(canvas, ctx, frames[i]);
  step.textContent = `+${i + 1}/${frames.length}`;
  idx += 1;
}
setInterval(show, 1000 / props.fps);
(async () => {
  while (element.isConnected) {
    let r;
    try {
      r = await server.next_future(chunk);
      if (!r) throw new Error('no reply');   // the Gradio client resolves a failed call to undefined
    }
    catch (e) { err.textContent = 'lost connection to the console server; retrying'; await sleep(1000); continue; }
    let problem = r.error || '';
    if (r.frames && r.frames.length) {
      chunk = r.chunk_id;
      try {
        const fresh = await Promise.all(r.frames.map(decodeJpeg));
        frames.forEach(b => b.close());
        frames = fresh; idx = 0; show();
        window.ewamFutures += 1; window.ewamFutureChunk = chunk;
        info.textContent = `chunk #${r.chunk_id} · ${Math.round(r.latency_ms)} ms to actions`;
      } catch (e) { problem = `could not decode the imagined future of chunk #${chunk} (${e.message || e})`; }
    }
    err.textContent = problem;
  }
})();
