// One camera tile (app/panels.py camera_tile): pulls JPEG frames from server.next_frame in a loop.
// In scope: element, props (camera, has_depth), server.
// Frames are decoded with createImageBitmap and drawn on a canvas (frame_canvas.js says why).
const cam = props.camera;
const canvas = canvasFor(element.querySelector('.cam-img'));
const ctx = canvas.getContext('2d');
const stats = element.querySelector('.cam-stats');
const err = element.querySelector('.cam-error');
const box = element.querySelector('.depth-toggle');
window.ewamFrames = window.ewamFrames || {};
window.ewamFrames[cam] = 0;
// window.ewamFrameLog[cam]: [seq, captured_ms, shown_ms (wall clock), base64 length] of the last 600 frames shown.
window.ewamFrameLog = window.ewamFrameLog || {};
const frameLog = window.ewamFrameLog[cam] = [];
let seq = -1, depth = false, shown = [];
if (box) box.addEventListener('change', () => { depth = box.checked; seq = -1; });
const sleep = ms => new Promise(r => setTimeout(r, ms));
async function draw(b64) {
  const bitmap = await decodeJpeg(b64);
  try { drawFrame(canvas, ctx, bitmap); } finally { bitmap.close(); }
}
(async () => {
  while (element.isConnected) {
    let r;
    try {
      r = await server.next_frame(cam, seq, depth);
      // the Gradio client logs a failed call and resolves to undefined instead of throwing
      if (!r) throw new Error('no reply');
    }
    catch (e) { err.textContent = 'lost connection to the console server; retrying'; await sleep(1000); continue; }
    let decodeError = '';
    if (r.jpeg) {
      seq = r.seq;
      try { await draw(r.jpeg); }
      catch (e) { decodeError = `could not decode the ${cam} frame (${e.message || e}); waiting for the next one`; }
      if (!decodeError) {
        window.ewamFrames[cam] += 1;
        frameLog.push([r.seq, r.captured_ms, Date.now(), r.jpeg.length]);
        if (frameLog.length > 600) frameLog.shift();
        const now = performance.now();
        shown.push(now);
        while (shown.length && now - shown[0] > 1000) shown.shift();
        stats.textContent = `${shown.length} fps shown · camera ${r.fps} fps · ${Math.round(r.age_ms)} ms old` +
                            (r.view === 'depth' ? ' · depth' : '');
      }
    }
    const problem = r.error || decodeError;
    err.textContent = problem;
    canvas.classList.toggle('stale', !!problem);
    canvas.style.opacity = problem ? '.35' : '';
    if (r.error && !r.jpeg) await sleep(250);
  }
})();
