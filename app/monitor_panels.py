"""The page's parts for knowing when the policy is lost (HTML strings; no Gradio state here):
instruction familiarity under the instruction box, the START confirmation for an unfamiliar
instruction, and the imagination-surprise sparkline next to the imagined future."""
from __future__ import annotations

import html

import gradio as gr

STATE_CLASS = {"on track": "ok", "surprised": "watch", "lost": "bad"}


def familiarity_html(fam: dict | None) -> str:
    """Under the instruction box: familiar or not, why not (every reason), the closest taught one."""
    if not fam:
        return ""
    nearest = fam.get("nearest") or [{}]
    closest = html.escape(str(nearest[0].get("instruction", "")))
    score, threshold = float(fam.get("score", 0.0)), float(fam.get("threshold", 0.0))
    if fam.get("familiar"):
        return (f'<div class="familiarity ok">familiar to the policy: {score:.2f} '
                f'(taught: <i>{closest}</i>)</div>')
    reasons = fam.get("reasons") or ([fam["reason"]] if fam.get("reason") else [])
    reason = (" ".join(html.escape(r) for r in reasons) if reasons      # an older server: no reasons
              else f"not like anything the policy was taught: {score:.2f} &lt; {threshold:.2f}")
    return (f'<div class="familiarity bad">{reason} '
            f'(similarity {score:.2f}; closest: <i>{closest}</i>)</div>')


def confirm_unfamiliar(fam: dict) -> tuple:
    """(row update, text update) asking for one more click, with every reason in words."""
    nearest = ", ".join(f'"{html.escape(n["instruction"])}" ({n["similarity"]:.2f})' for n in fam.get("nearest", []))
    reasons = " ".join(html.escape(r) for r in fam.get("reasons") or ([fam["reason"]] if fam.get("reason") else []))
    text = (f'<div class="familiarity-confirm"><b>The policy has not been taught anything like this.</b> '
            + (f'<span class="familiarity-reason">{reasons}</span> ' if reasons else "")
            + f'Closest: {nearest}. Run anyway?</div>')
    return gr.Row(visible=True), text


def confirm_hidden() -> tuple:
    return gr.Row(visible=False), ""


def _sparkline(values: list[float], top: float, width: int = 220, height: int = 40) -> str:
    if not values:
        return ""
    top = max(top, max(values), 1e-6)
    n = max(len(values) - 1, 1)
    points = " ".join(f"{i * width / n:.1f},{height - min(v, top) / top * (height - 2) - 1:.1f}"
                      for i, v in enumerate(values))
    return (f'<svg class="surprise-spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
            f'<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{points}"/></svg>')


def surprise_html(snapshot: dict | None) -> str:
    """Per-chunk imagination surprise: a sparkline and the state in plain words."""
    if snapshot is None:
        return '<div class="surprise-panel">imagination surprise: waiting for the first chunk</div>'
    values, state = snapshot.get("values") or [], snapshot.get("state", "waiting")
    thresholds = snapshot.get("thresholds") or {}
    lost = float(thresholds.get("lost", 0.0) or 0.0)
    latest = "" if snapshot.get("latest") is None else f' {snapshot["latest"]:.3f}'
    parts = [f'<div class="surprise-panel" data-state="{html.escape(state)}">imagination surprise '
             f'<span class="badge {STATE_CLASS.get(state, "")}">{html.escape(state)}</span>{latest}',
             _sparkline(values, 1.5 * lost if lost else 0.0)]
    if snapshot.get("auto_hold"):
        parts.append('<span class="surprise-auto">auto-hold on</span>')
    if snapshot.get("hold_reason"):
        parts.append(f'<div class="status-error">{html.escape(snapshot["hold_reason"])}</div>')
    elif snapshot.get("error"):
        parts.append(f'<div class="surprise-error">{html.escape(snapshot["error"])}</div>')
    return "".join(parts) + "</div>"
