// One camera tile (app/panels.py camera_tile): pulls JPEG frames from the console's live route
// (app/live_route.py: GET live_path/camera?after=seq&depth=0|1) in a loop. In scope: element,
// props (camera, has_depth, live_path). A frame arrives as bytes (its facts in the X-Ewam-Frame
// header), goes Blob -> createImageBitmap and is drawn on a canvas (frame_canvas.js says why);
// "no new frame" and camera errors arrive as JSON.
const cam = props.camera;
const canvas = canvasFor(element.querySelector('.cam-img'));
const ctx = canvas.getContext('2d');
const stats = element.querySelector('.cam-stats');
const err = element.querySelector('.cam-error');
const box = element.querySelector('.depth-toggle');
window.ewamFrames = window.ewamFrames || {};
window.ewamFrames[cam] = 0;
// window.ewamFrameLog[cam]: [seq, captured_ms, shown_ms (wall clock), JPEG bytes] of the last 600 frames shown.
window.ewamFrameLog = window.ewamFrameLog || {};
const frameLog = window.ewamFrameLog[cam] = [];
let seq = -1, depth = false, shown = [];
if (box) box.addEventListener('change', () => { depth = box.checked; seq = -1; });
const sleep = ms => new Promise(r => setTimeout(r, ms));
// Relative, so a console served under a path prefix (a reverse proxy) still finds its route.
const liveUrl = new URL(`${props.live_path}/${encodeURIComponent(cam)}`, document.baseURI);
// One pull -> {r: the frame's facts or the error, blob: the JPEG or null}; throws when the console is unreachable.
async function pull() {
  liveUrl.search = `after=${seq}&depth=${depth ? 1 : 0}`;
  const resp = await fetch(liveUrl, {cache: 'no-store', credentials: 'same-origin'});
  if ((resp.headers.get('content-type') || '').startsWith('image/jpeg')) {
    return {r: JSON.parse(resp.headers.get('x-ewam-frame')), blob: await resp.blob()};
  }
  let r;
  try { r = await resp.json(); } catch (e) { throw new Error(`HTTP ${resp.status}`); }
  return {r, blob: null};
}
async function draw(blob) {
  const bitmap = await createImageBitmap(blob);
  try { drawFrame(canvas, ctx, bitmap); } finally { bitmap.close(); }
}
(async () => {
  while (element.isConnected) {
    let r, blob;
    try { ({r, blob} = await pull()); }
    catch (e) { err.textContent = 'lost connection to the console server; retrying'; await sleep(1000); continue; }
    let decodeError = '';
    if (blob) {
      seq = r.seq;
      try { await draw(blob); }
      catch (e) { decodeError = `could not decode the ${cam} frame (${e.message || e}); waiting for the next one`; }
      if (!decodeError) {
        window.ewamFrames[cam] += 1;
        frameLog.push([r.seq, r.captured_ms, Date.now(), blob.size]);
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
    if (r.error && !blob) await sleep(250);
  }
})();
