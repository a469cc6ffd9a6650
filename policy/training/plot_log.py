"""Plot a training run's losses (OUT/train_log.jsonl, written by policy.train) to a PNG.

    python -m policy.training.plot_log runs/sim-tiny --out runs/sim-tiny/curves.png

One panel per loss (codec reconstruction, video flow, action flow) against the run's global step,
stages shaded and named, log scale: the drops worth seeing span two orders of magnitude.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

LOSSES = (("rec", "codec reconstruction"), ("video", "video flow matching"), ("action", "action flow matching"))


def read_log(path: Path) -> list[dict]:
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: point to a run directory written by policy.train "
                                "(its train_log.jsonl holds the logged losses)")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{number} is not JSON ({e}); was the file cut off mid-write?") from e
    if not rows:
        raise ValueError(f"{path} is empty: the run logged no step yet")
    return rows


def global_steps(rows: list[dict]) -> list[int]:
    """Per-stage step counters -> one axis: each stage starts where the previous one ended. A
    resumed run logs some steps again (from its last save): they land on the same x."""
    offset, stage, longest, out = 0, None, 0, []
    for r in rows:
        if r["stage"] != stage:
            offset, stage, longest = offset + longest, r["stage"], 0
        longest = max(longest, r["step"])
        out.append(offset + r["step"])
    return out


def loss_figure(rows: list[dict], title: str = "") -> Figure:
    steps = global_steps(rows)
    panels = [(key, label) for key, label in LOSSES if any(r.get(key, 0) > 0 for r in rows)]
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.2 * len(panels)), sharex=True, squeeze=False)
    spans: dict[str, list[int]] = {}
    for r, s in zip(rows, steps):
        spans.setdefault(r["stage"], [s, s])[1] = s
    for ax, (key, label) in zip(axes[:, 0], panels):
        xs, ys = zip(*[(s, r[key]) for r, s in zip(rows, steps) if r.get(key, 0) > 0])
        ax.plot(xs, ys, lw=0.8)
        ax.set_yscale("log")
        ax.set_ylabel(label, fontsize=8)
        for i, (stage, (a, b)) in enumerate(spans.items()):
            ax.axvspan(a, b, color=f"C{i}", alpha=0.08)
            if ax is axes[0, 0]:
                ax.text((a + b) / 2, 1.02, stage, transform=ax.get_xaxis_transform(), ha="center", fontsize=8)
    axes[-1, 0].set_xlabel("step (all stages)")
    if title:
        fig.suptitle(title, fontsize=9, y=1.0)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="run directory of policy.train")
    p.add_argument("--out", type=Path, help="PNG to write (default RUN/curves.png)")
    a = p.parse_args(argv)
    out = a.out or a.run / "curves.png"
    fig = loss_figure(read_log(a.run / "train_log.jsonl"), title=a.run.resolve().name)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    print(out)
    return out


if __name__ == "__main__":
    main()
