// The recording panel (app/recording_panel.py): data collection in the page. Polls
// server.rec_status 5x a second (phase + timer, "40 of 50", live quality, confirmation) and sends
// buttons and keys to server.rec_action. Keys (not while typing, only when "keys" is ticked and
// this panel is on screen): S success, F failure, Backspace discard-and-redo, Enter confirms a
// flagged save. They are caught before the teleop script's jog keys (capture phase).
// In scope: element, props.defaults (JSON), server. window.ewamRecording = the last status.
const defaults = JSON.parse(props.defaults || '{}');
const $ = sel => element.querySelector(sel);
const session = () => document.querySelector('#ewam-session [data-session]')?.dataset.session || '';
const esc = s => String(s ?? '').replace(/[&<>"]/g, c => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c]));
const sleep = ms => new Promise(r => setTimeout(r, ms));
const el = {
  task: $('.rec-task'), operator: $('#rec-operator input'), target: $('#rec-target input'),
  countdown: $('#rec-countdown input'), reset: $('#rec-reset input'), auto: $('.rec-auto'), keys: $('.rec-keys'),
  notes: $('#rec-notes textarea'), phase: $('#rec-phase'), progress: $('#rec-progress'), last: $('#rec-last'),
  flag: $('#rec-flag'), confirm: $('#rec-confirm'), confirmText: $('.rec-confirm-text'), quality: $('#rec-quality'),
  msg: $('#rec-msg'),
};
el.countdown.value = defaults.countdown_s ?? 3;
el.reset.value = defaults.reset_s ?? 10;
el.auto.checked = !!defaults.auto_next;
el.operator.value = localStorage.getItem('ewam-operator') || '';
el.keys.checked = localStorage.getItem('ewam-rec-keys') !== 'off';
window.ewamRecording = null;
let last = null, note = '', noteUntil = 0;
// Writes only what changed: the panel is polled 5x a second and most polls change nothing; an
// identical write still replaces the DOM nodes (issue 19: the page's memory over hours).
const setText = (node, text) => { if (node.textContent !== text) node.textContent = text; };
const written = new Map();          // node -> the HTML last written into it
const setHtml = (node, html) => { if (written.get(node) !== html) { node.innerHTML = html; written.set(node, html); } };
const setClass = (node, cls) => { if (node.className !== cls) node.className = cls; };

function fields() {
  return {task: el.task.value, operator: el.operator.value, notes: el.notes.value, target: el.target.value,
          countdown_s: el.countdown.value, reset_s: el.reset.value, auto_next: el.auto.checked};
}
function say(text, bad) { note = text; noteUntil = Date.now() + 6000; el.msg.classList.toggle('error', !!bad); }
async function act(action) {
  try {
    const r = await server.rec_action(session(), action, fields());
    if (r.error) say(r.error, true);
    else if (r.confirm) say('Flagged: ' + r.confirm.join('; ') + ' · press the key again (or Enter) to save anyway');
    else if (r.saved !== undefined && r.saved !== null) { el.notes.value = ''; say(''); }
    else say('');
    if (r.status) render(r.status);
  } catch (e) { say('lost connection to the console: ' + e, true); }
}
const buttons = {'#rec-start': 'start', '#rec-success': 'success', '#rec-failure': 'failure', '#rec-save': 'unlabelled',
                 '#rec-redo': 'redo', '#rec-discard': 'discard', '#rec-confirm-yes': 'confirm',
                 '#rec-confirm-no': 'cancel_confirm'};
for (const [sel, action] of Object.entries(buttons)) $(sel).addEventListener('click', () => act(action));
[el.countdown, el.reset, el.auto, el.target].forEach(x => x.addEventListener('change', () => act('configure')));
el.operator.addEventListener('change', () => localStorage.setItem('ewam-operator', el.operator.value.trim()));
el.keys.addEventListener('change', () => localStorage.setItem('ewam-rec-keys', el.keys.checked ? 'on' : 'off'));

function typing(ev) {               // in a text box (a ticked checkbox or a button is not one)
  const t = ev.target;
  if (!t) return false;
  if (t.tagName === 'INPUT') return !['checkbox', 'radio', 'button', 'submit', 'range'].includes(t.type);
  return t.tagName === 'TEXTAREA' || t.tagName === 'SELECT' || t.isContentEditable;
}
const onScreen = () => element.isConnected && element.getClientRects().length > 0;
window.addEventListener('keydown', ev => {
  if (!el.keys.checked || typing(ev) || ev.ctrlKey || ev.metaKey || ev.altKey || !onScreen()) return;
  const k = ev.key.length === 1 ? ev.key.toLowerCase() : ev.key;
  const pending = last && last.confirm;
  let action = null;
  if (k === 's') action = pending && pending.label === 'success' ? 'confirm' : 'success';
  else if (k === 'f') action = pending && pending.label === 'failure' ? 'confirm' : 'failure';
  else if (k === 'Backspace') action = 'redo';
  else if (k === 'Enter' && pending) action = 'confirm';
  if (!action) return;
  ev.preventDefault(); ev.stopImmediatePropagation();    // not a jog, not a browser shortcut
  if (!ev.repeat) act(action);
}, true);

const MARK = {success: '✓ success', failure: '✗ failure', unlabelled: '○ unlabelled'};
function qualityLine(q) {
  const f = q && q.figures;
  if (!f || !f.frames) return '';
  const cams = Object.keys(f.dropped || {}).map(c =>
    `${esc(c)} ${f.dropped[c]}/${f.repeated[c]}/${f.frozen[c]}`).join(' · ');
  return `rate <b>${esc(f.control_hz)}</b> / ${esc(f.target_hz)} Hz · dropped/repeated/frozen: ${cams} · ` +
         `skew ${esc(f.skew_ms)} ms · state gaps ${esc(f.state_gaps)} (max ${esc(f.state_gap_max_ms)} ms)`;
}
function render(s) {
  last = s; window.ewamRecording = s;
  let phase = 'ready', cls = 'idle';
  if (s.recording && s.kind === 'policy') { phase = `● REC policy rollout · ${s.frames} frames`; cls = 'rec'; }
  else if (s.phase === 'countdown') { phase = `recording in ${(s.remaining_s ?? 0).toFixed(1)} s`; cls = 'countdown'; }
  else if (s.phase === 'recording') { phase = `● REC ${(s.elapsed_s ?? 0).toFixed(1)} s · ${s.frames} frames`; cls = 'rec'; }
  else if (s.phase === 'reset') { phase = `reset the scene: ${(s.remaining_s ?? 0).toFixed(0)} s`; cls = 'reset'; }
  setText(el.phase, phase); setClass(el.phase, 'rec-phase ' + cls);
  setText(el.progress, s.progress ? `${s.task || el.task.value || ''}: ${s.progress}`.replace(/^: /, '') : '');
  setText(el.last, s.last_saved !== null && s.last_saved !== undefined
    ? `last: episode ${s.last_saved} ${MARK[s.last_label] || ''}` : '');
  const q = s.quality || {}, flags = q.flags || [];
  el.flag.hidden = !flags.length;
  setClass(el.flag, 'rec-flag ' + (s.recording ? 'live' : 'past'));
  setHtml(el.flag, flags.length ? (s.recording ? '⚠ FLAGGED: ' : '⚠ last episode flagged: ') + flags.map(esc).join('; ') : '');
  setHtml(el.quality, qualityLine(q));
  el.confirm.hidden = !s.confirm;
  if (s.confirm) setText(el.confirmText,
    `Save this flagged episode as ${s.confirm.label}? (${s.confirm.flags.join('; ')}) ` +
    `Press ${s.confirm.label === 'success' ? 'S' : s.confirm.label === 'failure' ? 'F' : 'Enter'} again or Enter to save it anyway.`);
  if (document.activeElement !== el.target) el.target.value = s.target ?? '';
  const text = Date.now() < noteUntil && note ? note : (s.error || s.message || '');
  setText(el.msg, text);
  if (!(Date.now() < noteUntil && note)) el.msg.classList.toggle('error', !!s.error);
}
(async () => {
  while (element.isConnected) {
    try { render(await server.rec_status(session(), el.task.value)); }
    catch (e) { setText(el.phase, 'lost connection to the console'); }
    await sleep(200);
  }
})();
