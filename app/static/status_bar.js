// The status bar (app/panels.py status_bar): renders app/status.py StatusView.as_dict, polled
// 4x per second through server.status (also the tab's heartbeat). In scope: element, server.
const bar = element.querySelector('.status-bar');
const session = () => document.querySelector('#ewam-session [data-session]')?.dataset.session || '';
const esc = s => String(s ?? '').replace(/[&<>"]/g, c => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c]));
window.ewamStatus = null;
const sleep = ms => new Promise(r => setTimeout(r, ms));
// Only a changed bar is written: most polls bring the same status, and every innerHTML write
// makes new nodes for the renderer to lay out and collect (issue 19: the page's memory over hours).
let shown = '';
function show(html) { if (html !== shown) { bar.innerHTML = html; shown = html; } }
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
    s.task_check ? span(`badge task-check ${s.task_check === 'done' ? 'ok' : 'watch'}`,
                        `task check: ${esc(s.task_check)}`) : '',
    s.outcome === 'timed out' ? span('badge bad', 'rollout timed out: failure') : '',
    s.notice ? span('field notice', esc(s.notice)) : '',
  ];
  const errors = (s.errors || []).map(e => `<div class="status-error">⚠ ${esc(e)}</div>`).join('');
  show(`<div class="status-row">${parts.join('')}</div>${errors}`);
}
(async () => {
  while (element.isConnected) {
    try { const s = await server.status(session()); window.ewamStatus = s; render(s); }
    catch (e) {
      show(`<div class="status-error">⚠ lost connection to the console server (${esc(e)}); ` +
           'is run_demo.py still running?</div>');
    }
    await sleep(250);
  }
})();
