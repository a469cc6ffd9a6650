"""Review tab: pick a recorded episode or policy rollout, play its camera videos, scrub frame by
frame with the imagined future of the chunk in force next to what really happened, and plot
joint trajectories (state vs action) and per-chunk latency.

Opening an episode decodes nothing up front: the browser plays each camera's own mp4 (H.264
yuv420p), and the frames the scrubber shows are decoded on demand (app.review_frames: seek to
the keyframe before, decode that second, cache the JPEGs), so a 60 s, 3-camera episode opens in
well under a second (python -m app.tools.bench_review). The joint and latency plots follow in a
second step. The list shows each episode's label (✓ success, ✗ failure, ○ unlabelled) and ⚠ for
quality flags, and can be filtered by label.
"""
from __future__ import annotations

import html
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import cv2
import gradio as gr
import numpy as np

from app import plots
from app.review_frames import LazyClipJpegs, LazyComposites, LazyJpegs, camera_frames, lazy_clips
from policy.episodes.reader import DatasetReader, ImaginedClip

LABEL_MARKS = {"success": "✓", "failure": "✗", "unlabelled": "○"}
LABEL_FILTERS = ["all", "success", "failure", "unlabelled", "flagged"]

# The paper's future frames are every 2nd action: imagined frame k shows action step 2(k+1).
IMAGINED_FRAME_STRIDE = 2
MAX_VIDEO_PLAYERS = 3


@dataclass
class LoadedEpisode:
    root: str
    index: int
    task: str
    fps: int
    length: int
    cameras: list[str]
    jpegs: dict[str, LazyJpegs]               # camera -> per-frame base64 JPEG (decoded on demand)
    composites: LazyComposites                # per frame: all cameras in the policy's T-layout, small
    clips: list[ImaginedClip]                 # (app.review_frames.LazyClip: frames decoded on demand)
    clip_jpegs: LazyClipJpegs
    videos: dict[str, str]                    # camera -> mp4 path
    state: object
    action: object
    joint_names: list[str]
    label: str = "unlabelled"
    operator: str = ""
    notes: str = ""
    quality_flags: tuple = ()


class EpisodeCache:
    def __init__(self, size: int = 2):
        self.size = size
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[str, int], LoadedEpisode] = OrderedDict()

    def get(self, root: str, index: int) -> LoadedEpisode:
        key = (str(Path(root).resolve()), int(index))
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        episode = load_episode(root, index)
        with self._lock:
            self._items[key] = episode
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return episode


class EpisodeVideo(gr.Video):
    """gr.Video for the episode's own mp4, which policy.episodes.video always encodes as H.264
    yuv420p (browser-playable): skips gr.Video's ffprobe check (~0.1 s a camera on this machine)."""
    is_template = True                    # rendered by the frontend's Video component

    def postprocess(self, value):
        if isinstance(value, (str, Path)) and str(value).endswith(".mp4") and Path(value).is_file():
            from gradio.data_classes import FileData
            return FileData(path=str(value))
        return super().postprocess(value)


def open_reader(root: str) -> DatasetReader:
    root = (root or "").strip()
    if not root:
        raise gr.Error("Type the dataset directory (run_demo.py --dataset DIR) and press Refresh.")
    if not Path(root).is_dir():
        raise gr.Error(f"Dataset directory {root} does not exist: record an episode first or fix the path.")
    try:
        return DatasetReader(root)
    except Exception as exc:
        raise gr.Error(f"{root} is not a readable dataset: {exc}") from None


def episode_choice(e) -> str:
    mark = LABEL_MARKS.get(e.label, "○")
    flag = " ⚠" if e.quality_flags else ""
    return f"#{e.index} {mark}{flag} · {e.length} frames · {'rollout' if e.has_imagined else 'demo'} · {e.task}"


def label_counts(reader: DatasetReader) -> str:
    """"12 episodes: 8 ✓ · 3 ✗ · 1 ○ · 2 ⚠" (the dataset's labels at a glance)."""
    eps = reader.episodes
    parts = [f"{sum(e.label == label for e in eps)} {mark}" for label, mark in LABEL_MARKS.items()]
    parts.append(f"{sum(bool(e.quality_flags) for e in eps)} ⚠")
    return f"{len(eps)} episode{'' if len(eps) == 1 else 's'}: " + " · ".join(parts)


def episode_choices(root: str, show: str = "all", reader: DatasetReader | None = None) -> list[tuple[str, int]]:
    """Newest first; show: "all", a label, or "flagged" (episodes that broke a quality limit)."""
    reader = reader or open_reader(root)
    show = (show or "all").lower()
    keep = [e for e in reader.episodes if show == "all" or (show == "flagged" and e.quality_flags) or e.label == show]
    return [(episode_choice(e), e.index) for e in reversed(keep)]


def load_episode(root: str, index: int) -> LoadedEpisode:
    reader = open_reader(root)
    if not 0 <= index < reader.num_episodes:
        raise gr.Error(f"Episode {index} does not exist; the dataset has {reader.num_episodes} episodes.")
    info = reader.episodes[index]
    cameras = reader.camera_names
    sources = {cam: camera_frames(reader, index, cam) for cam in cameras}    # nothing decoded yet
    clips = lazy_clips(reader, index)
    table = reader.episode_table(index)
    return LoadedEpisode(root=root, index=index, task=info.task, fps=reader.fps, length=info.length, cameras=cameras,
                         jpegs={cam: LazyJpegs(src) for cam, src in sources.items()},
                         composites=LazyComposites([sources[c] for c in cameras], t_layout), clips=clips,
                         clip_jpegs=LazyClipJpegs(clips),
                         videos={cam: str(reader.video_path(index, cam)[0]) for cam in cameras},
                         state=table.state, action=table.action,
                         joint_names=list(reader.spec.state_names), label=info.label, operator=info.operator,
                         notes=info.notes, quality_flags=tuple(info.quality_flags))


def t_layout(images: list[np.ndarray], width: int) -> np.ndarray:
    """The policy's view of the rig: the first camera on top, the others side by side below it
    (PAPER.md's T-layout), scaled to `width` pixels, so real frames compare with imagined ones."""
    top = cv2.resize(images[0], (width, round(width * images[0].shape[0] / images[0].shape[1])))
    rest = images[1:]
    if not rest:
        return top
    cell = width // len(rest)
    row = [cv2.resize(im, (cell, round(cell * im.shape[0] / im.shape[1]))) for im in rest]
    height = max(r.shape[0] for r in row)
    bottom = np.zeros((height, width, 3), np.uint8)
    for k, r in enumerate(row):
        bottom[: r.shape[0], k * cell: k * cell + r.shape[1]] = r
    return np.concatenate([top, bottom], axis=0)


def clip_at(episode: LoadedEpisode, frame: int) -> int | None:
    """Index of the imagined clip in force at `frame`: the latest chunk started at or before it."""
    started = [(clip.start_frame_index, i) for i, clip in enumerate(episode.clips) if clip.start_frame_index <= frame]
    return max(started)[1] if started else None


def _img(b64: str, cls: str = "", title: str = "") -> str:
    return f'<img class="{cls}" title="{html.escape(title)}" src="data:image/jpeg;base64,{b64}"/>'


def frame_html(episode: LoadedEpisode, frame: int) -> str:
    frame = max(0, min(int(frame), episode.length - 1))
    cams = "".join(f'<figure class="rv-cam">{_img(episode.jpegs[c][min(frame, len(episode.jpegs[c]) - 1)])}'
                   f'<figcaption>{html.escape(c)} · frame {frame} · {frame / episode.fps:.1f} s</figcaption></figure>'
                   for c in episode.cameras if episode.jpegs[c])
    ci = clip_at(episode, frame)
    if ci is None:
        future = ('<div class="rv-note">No imagined future here: ' +
                  ("this episode is a demonstration (no policy)." if not episode.clips else
                   "the first chunk starts later.") + "</div>")
    else:
        clip, imgs = episode.clips[ci], episode.clip_jpegs[ci]
        imagined = [_img(b, "rv-small", f"imagined +{IMAGINED_FRAME_STRIDE * (k + 1)}") for k, b in enumerate(imgs)]
        real = []
        for k in range(len(imgs)):
            t = clip.start_frame_index + IMAGINED_FRAME_STRIDE * (k + 1)
            real.append(_img(episode.composites[t], "rv-small", f"frame {t}") if t < len(episode.composites)
                        else '<span class="rv-small rv-missing">after the end</span>')
        future = (f'<div class="rv-note">chunk {clip.chunk_index}: requested at frame {clip.start_frame_index}, '
                  f'{clip.latency_ms:.0f} ms to actions. Top: what the policy imagined (every '
                  f'{IMAGINED_FRAME_STRIDE}nd step); bottom: what the cameras saw at the same steps.</div>'
                  f'<div class="rv-strip">{"".join(imagined)}</div>'
                  f'<div class="rv-strip">{"".join(real)}</div>')
    return (f'<div class="rv"><div class="rv-cams">{cams}</div><div class="rv-future">{future}</div></div>'
            '<style>.rv-cams{display:flex;gap:8px;flex-wrap:wrap}.rv-cam{margin:0}'
            '.rv-cam img{width:320px;max-width:100%}'
            '.rv-cam figcaption{font-size:12px;color:#666}.rv-strip{display:flex;gap:4px;margin:4px 0}'
            '.rv-small{height:120px;width:auto;font-size:11px;color:#999}.rv-note{font-size:13px;margin-top:6px}</style>')


def summary_text(ep: LoadedEpisode) -> str:
    label = {"success": "✓ success", "failure": "✗ failure"}.get(ep.label, "unlabelled")
    text = (f"**Episode {ep.index}** · {label} · {ep.length} frames at {ep.fps} Hz · task: *{ep.task}* · "
            f"{len(ep.clips)} imagined chunk(s)")
    if ep.operator:
        text += f" · operator {html.escape(ep.operator)}"
    if ep.notes:
        text += f"  \nnotes: {html.escape(ep.notes)}"
    if ep.quality_flags:
        text += "  \n⚠ quality: " + "; ".join(html.escape(f) for f in ep.quality_flags)
    return text


def open_view(cache: EpisodeCache, path: str, index: int) -> list:
    """What selecting an episode shows first: summary, scrubber, frame 0, the camera videos
    (the episode's own mp4 files: nothing is decoded for them)."""
    ep = cache.get(path, int(index))
    updates = [gr.update(value=ep.videos[c], label=c, visible=True) for c in ep.cameras[:MAX_VIDEO_PLAYERS]]
    updates += [gr.update(visible=False)] * (MAX_VIDEO_PLAYERS - len(updates))
    return [summary_text(ep), gr.Slider(0, max(ep.length - 1, 1), value=0, step=1), frame_html(ep, 0)] + updates


def episode_plots(cache: EpisodeCache, path: str, index: int) -> list:
    """Joint trajectories, per-chunk latency and surprise (drawn after the episode is open)."""
    ep = cache.get(path, int(index))
    starts = [c.start_frame_index for c in ep.clips]
    return [plots.joint_figure(ep.state, ep.action, ep.joint_names, ep.fps, cursor=0),
            plots.chunk_latency_figure(starts, [c.latency_ms for c in ep.clips], ep.fps),
            plots.surprise_figure(starts, [getattr(c, "surprise", float("nan")) for c in ep.clips], ep.fps)]


def build_review_tab(dataset_root: str | None, tab: gr.Tab | None = None) -> None:
    """The review widgets, inside the caller's gr.Tab; selecting `tab` refreshes the episode list."""
    cache = EpisodeCache()

    with gr.Row():
        root = gr.Textbox(value=str(Path(dataset_root).resolve()) if dataset_root else "", label="Dataset directory",
                          scale=3, elem_id="review-root")
        refresh = gr.Button("Refresh", scale=0, min_width=100, elem_id="review-refresh")
        show = gr.Dropdown(choices=LABEL_FILTERS, value="all", label="Show", scale=1, elem_id="review-show")
        episode = gr.Dropdown(choices=[], label="Episode / rollout (✓ success, ✗ failure, ○ unlabelled, ⚠ quality)",
                              scale=4, elem_id="review-episode", allow_custom_value=False)
    summary = gr.Markdown("Pick an episode.", elem_id="review-summary")
    with gr.Row():
        videos = [EpisodeVideo(label=f"camera {i + 1}", interactive=False, visible=False, height=240, autoplay=False)
                  for i in range(MAX_VIDEO_PLAYERS)]
    scrub = gr.Slider(0, 1, value=0, step=1, label="Frame (scrub)", elem_id="review-scrub")
    view = gr.HTML("", elem_id="review-frame")
    joints = gr.Plot(show_label=False, elem_id="review-joints")
    latency = gr.Plot(show_label=False, elem_id="review-latency")
    surprise = gr.Plot(show_label=False, elem_id="review-surprise")

    def do_refresh(path: str, which: str = "all"):
        reader = open_reader(path)
        choices = episode_choices(path, which, reader)
        return gr.Dropdown(choices=choices, value=choices[0][1] if choices else None,
                           label=f"Episode / rollout ({label_counts(reader)}; ⚠ quality)")

    def do_load(path: str, index):
        if index is None:
            return ["Pick an episode.", gr.Slider(), ""] + [gr.update(visible=False)] * MAX_VIDEO_PLAYERS
        return open_view(cache, path, int(index))

    def do_plots(path: str, index):
        if index is None:
            return [None, None, None]
        return episode_plots(cache, path, int(index))

    def do_scrub(path: str, index, frame):
        if index is None:
            return ""
        return frame_html(cache.get(path, int(index)), int(frame))

    def do_cursor(path: str, index, frame):
        if index is None:
            return None
        ep = cache.get(path, int(index))
        return plots.joint_figure(ep.state, ep.action, ep.joint_names, ep.fps, cursor=int(frame))

    refresh.click(do_refresh, [root, show], [episode])
    show.change(do_refresh, [root, show], [episode])
    if tab is not None and dataset_root:
        def quiet_refresh(path: str, which: str):
            try:
                return do_refresh(path, which)
            except gr.Error:              # nothing recorded yet: an empty list, no pop-up
                return gr.Dropdown(choices=[], value=None)
        tab.select(quiet_refresh, [root, show], [episode])
    root.submit(do_refresh, [root, show], [episode])
    episode.change(do_load, [root, episode], [summary, scrub, view, *videos]).then(
        do_plots, [root, episode], [joints, latency, surprise], show_progress="hidden")
    scrub.change(do_scrub, [root, episode, scrub], [view], show_progress="hidden", trigger_mode="always_last")
    scrub.release(do_cursor, [root, episode, scrub], [joints], show_progress="hidden", trigger_mode="always_last")
