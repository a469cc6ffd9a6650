// Shared by camera_tile.js and future.js (app/panels.py prepends it to each): a canvas that takes
// an <img>'s place, decoding a JPEG, and drawing the decoded frame on it. A new data: (or blob:)
// URL per frame on an <img> makes Chromium keep every decoded frame in the renderer (issue 19:
// ~100-230 MB/min at 45 frames/s); a canvas redrawn in place stays flat.
function canvasFor(img) {
  const canvas = document.createElement('canvas');
  canvas.className = img.className;
  canvas.setAttribute('aria-label', img.alt);
  canvas.setAttribute('role', 'img');
  // console.css styles `.cam-frame img`; the same box rules, inline, for the canvas.
  Object.assign(canvas.style, {width: '100%', height: '100%', objectFit: 'contain', display: 'block', visibility: 'hidden'});
  img.replaceWith(canvas);
  return canvas;
}
// A JPEG sent as base64 (future.js: the imagined frames in a server function's JSON; the camera tiles
// get bytes and call createImageBitmap on the Blob themselves) -> an ImageBitmap; the caller closes it.
function decodeJpeg(b64) {
  let bytes;
  if (Uint8Array.fromBase64) bytes = Uint8Array.fromBase64(b64);
  else {
    const s = atob(b64);
    bytes = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) bytes[i] = s.charCodeAt(i);
  }
  return createImageBitmap(new Blob([bytes], {type: 'image/jpeg'}));
}
function drawFrame(canvas, ctx, bitmap) {
  if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
    canvas.width = bitmap.width; canvas.height = bitmap.height;
  }
  ctx.drawImage(bitmap, 0, 0);
  canvas.style.visibility = '';
}
