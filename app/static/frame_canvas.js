// Shared by camera_tile.js and future.js (app/panels.py prepends it to each): a canvas that takes
// an <img>'s place, and drawing a decoded frame on it. A new data: (or blob:) URL per frame on an
// <img> makes Chromium keep every decoded frame in the renderer (issue 19: ~100-230 MB/min at 45
// frames/s); a canvas redrawn in place stays flat.
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
function drawFrame(canvas, ctx, bitmap) {
  if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
    canvas.width = bitmap.width; canvas.height = bitmap.height;
  }
  ctx.drawImage(bitmap, 0, 0);
  canvas.style.visibility = '';
}
