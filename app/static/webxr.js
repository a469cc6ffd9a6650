// WebXR teleop (app/xr_teleop.py): "Enter VR" starts an immersive session; every XR frame sends the
// controllers' grip poses, squeeze and trigger to server.xr_pose (latest wins: one request in flight,
// a newer frame replaces the unsent one). Sends while any grip is held, plus one message after the
// last release. In the headset a world-fixed quad shows the live head camera (the head tile's image).
// In scope: element, props.xr (app/xr_teleop.py page_config), server.
// window.ewamXR: counters the tests and the benchmark read.
const cfg = JSON.parse(props.xr);
const btn = element.querySelector('.xr-enter');
const msg = element.querySelector('.xr-msg');
const stats = element.querySelector('.xr-stats');
const session = () => document.querySelector('#ewam-session [data-session]')?.dataset.session || '';
const state = window.ewamXR = {mode: null, frames: 0, sent: 0, replies: 0, dropped: 0, errors: 0,
                               lastError: '', engaged: [], notes: [], headFrames: 0, headShown: -1};
let xrSession = null, seq = 0, inFlight = false, pending = null, wasHeld = false;

function say(text, error) { msg.textContent = text; msg.classList.toggle('error', !!error); }

async function pickMode() {
  if (!navigator.xr) return null;
  for (const mode of ['immersive-vr', 'immersive-ar']) {
    try { if (await navigator.xr.isSessionSupported(mode)) return mode; } catch (e) { /* try the next */ }
  }
  return null;
}

(async () => {
  if (!cfg.available) { say('WebXR teleop is off: ' + cfg.why_not, true); return; }
  if (!window.isSecureContext) {
    say('WebXR needs a secure page: open the console over HTTPS, or on the Quest via `adb reverse tcp:PORT ' +
        'tcp:PORT` and http://localhost:PORT', true);
    return;
  }
  const mode = await pickMode();
  if (!mode) { say('this browser has no immersive WebXR: open the console in the Quest Browser ' +
                   '(or Chrome on an Android phone with ARCore)', true); return; }
  btn.disabled = false; btn.dataset.mode = mode;
  say('ready (' + mode + ')');
})();

// -- sending: latest wins ---------------------------------------------------------------------------
async function pump() {
  if (inFlight || !pending) return;
  const message = pending; pending = null; inFlight = true;
  try {
    const t0 = performance.now();
    const r = await server.xr_pose(session(), message);
    state.replies += 1; state.rttMs = Math.round(performance.now() - t0);
    if (r.error) { state.errors += 1; state.lastError = r.error; say(r.error, true); }
    else {
      state.engaged = r.engaged || []; state.notes = r.notes || [];
      say(state.engaged.length ? 'moving: ' + state.engaged.join(' + ') + (state.notes.length ? ' · ' +
          state.notes.join('; ') : '') : 'holding (grip to move)');
    }
  } catch (e) { state.errors += 1; state.lastError = String(e); say('lost connection to the console: ' + e, true); }
  finally { inFlight = false; }
  pump();
}
function send(message) {
  if (pending) state.dropped += 1;          // superseded before it went out: never sent stale
  pending = message; state.sent += 1; pump();
}

// -- rendering: the head camera on a quad 1.5 m ahead -------------------------------------------------
const VS = `attribute vec2 a; uniform mat4 P, V; uniform vec2 S; varying vec2 uv;
  void main() { uv = vec2(a.x * 0.5 + 0.5, 0.5 - a.y * 0.5);
                gl_Position = P * V * vec4(a.x * S.x, a.y * S.y - 0.1, -1.5, 1.0); }`;
const FS = `precision mediump float; varying vec2 uv; uniform sampler2D T;
  void main() { gl_FragColor = texture2D(T, uv); }`;
function makeRenderer(gl) {
  const shader = (type, src) => { const s = gl.createShader(type); gl.shaderSource(s, src); gl.compileShader(s); return s; };
  const prog = gl.createProgram();
  gl.attachShader(prog, shader(gl.VERTEX_SHADER, VS)); gl.attachShader(prog, shader(gl.FRAGMENT_SHADER, FS));
  gl.linkProgram(prog);
  const buf = gl.createBuffer();
  gl.bindBuffer(gl.ARRAY_BUFFER, buf);
  gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
  const tex = gl.createTexture();
  gl.bindTexture(gl.TEXTURE_2D, tex);
  gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, 1, 1, 0, gl.RGBA, gl.UNSIGNED_BYTE, new Uint8Array([40, 40, 40, 255]));
  [gl.TEXTURE_WRAP_S, gl.TEXTURE_WRAP_T].forEach(p => gl.texParameteri(gl.TEXTURE_2D, p, gl.CLAMP_TO_EDGE));
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR);
  const loc = n => gl.getUniformLocation(prog, n);
  let shown = -1, aspect = 4 / 3;
  return (frame, pose, layer) => {
    // the head tile's canvas (camera_tile.js draws every frame there; an <img> in older pages)
    const img = document.querySelector('#cam-' + cfg.head_camera + ' .cam-img');
    const count = (window.ewamFrames || {})[cfg.head_camera];
    const w = img ? (img.naturalWidth || (img.tagName === 'CANVAS' ? img.width : 0)) : 0;
    const h = img ? (img.naturalHeight || (img.tagName === 'CANVAS' ? img.height : 0)) : 0;
    if (img && w && h && (img.tagName === 'CANVAS' || img.complete) && count !== shown) {
      gl.bindTexture(gl.TEXTURE_2D, tex);
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, gl.RGBA, gl.UNSIGNED_BYTE, img);
      shown = state.headShown = count; aspect = w / h; state.headFrames += 1;
    }
    gl.bindFramebuffer(gl.FRAMEBUFFER, layer.framebuffer);
    gl.clearColor(0.05, 0.05, 0.06, 1); gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
    gl.useProgram(prog);
    gl.bindBuffer(gl.ARRAY_BUFFER, buf);
    const a = gl.getAttribLocation(prog, 'a');
    gl.enableVertexAttribArray(a); gl.vertexAttribPointer(a, 2, gl.FLOAT, false, 0, 0);
    gl.bindTexture(gl.TEXTURE_2D, tex);
    gl.uniform2f(loc('S'), 0.6, 0.6 / aspect);
    for (const view of pose.views) {
      const vp = layer.getViewport(view);
      gl.viewport(vp.x, vp.y, vp.width, vp.height);
      gl.uniformMatrix4fv(loc('P'), false, view.projectionMatrix);
      gl.uniformMatrix4fv(loc('V'), false, view.transform.inverse.matrix);
      gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
    }
  };
}

// -- the session ------------------------------------------------------------------------------------
function hands(frame, space) {
  const out = {};
  for (const src of frame.session.inputSources) {
    if (!src.gripSpace || !src.gamepad || (src.handedness !== 'left' && src.handedness !== 'right')) continue;
    const p = frame.getPose(src.gripSpace, space);
    if (!p) continue;                       // not tracked this frame: that arm holds
    const b = src.gamepad.buttons;
    const t = p.transform;
    out[src.handedness] = {position: [t.position.x, t.position.y, t.position.z],
                           orientation: [t.orientation.x, t.orientation.y, t.orientation.z, t.orientation.w],
                           trigger: b[0] ? b[0].value : 0, grip: b[1] ? b[1].value : 0};
  }
  return out;
}

async function enter() {
  const mode = btn.dataset.mode;
  const canvas = document.createElement('canvas');
  const gl = canvas.getContext('webgl2', {xrCompatible: true}) || canvas.getContext('webgl', {xrCompatible: true});
  if (!gl) { say('WebGL is unavailable in this browser: cannot show the head camera in the headset', true); return; }
  try {
    xrSession = await navigator.xr.requestSession(mode, {optionalFeatures: ['local-floor']});
  } catch (e) { say('could not start the ' + mode + ' session: ' + e, true); return; }
  await gl.makeXRCompatible();
  const layer = new XRWebGLLayer(xrSession, gl);
  xrSession.updateRenderState({baseLayer: layer});
  const space = await xrSession.requestReferenceSpace('local');
  const draw = makeRenderer(gl);
  state.mode = mode; btn.textContent = 'Exit VR';
  say('in ' + mode + ': hold grip to move an arm');
  xrSession.addEventListener('end', () => {
    xrSession = null; state.mode = null; btn.textContent = 'Enter VR';
    send({seq: ++seq, hands: {}});          // release: the arm holds now, not when the command expires
    wasHeld = false; say('left VR: holding');
  });
  const onFrame = (time, frame) => {
    if (!xrSession) return;
    xrSession.requestAnimationFrame(onFrame);
    state.frames += 1;
    const pose = frame.getViewerPose(space);
    if (pose) draw(frame, pose, xrSession.renderState.baseLayer);
    const h = hands(frame, space);
    if (state.frames === 90 && !Object.keys(h).length)
      say('no tracked controllers in this session (a phone or hand tracking): pick up the Quest controllers', true);
    const held = Object.values(h).some(x => x.grip > 0.05);
    if (held || wasHeld) send({seq: ++seq, hands: h});
    wasHeld = held;
  };
  xrSession.requestAnimationFrame(onFrame);
}

btn.addEventListener('click', () => { if (xrSession) xrSession.end(); else enter(); });
