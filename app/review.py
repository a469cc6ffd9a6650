"""Review tab: pick a recorded episode or policy rollout, play its camera videos, scrub frame by
frame with the imagined future of the chunk in force next to what really happened, and plot
joint trajectories (state vs action) and per-chunk latency.

An episode is decoded once into per-frame JPEGs (a few MB, not hundreds of MB of raw frames)
and kept in a small cache shared by all tabs, so scrubbing only picks strings.
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
from app.live_view import jpeg_b64
from policy.episodes.reader import DatasetReader, ImaginedClip

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
    jpegs: dict[str, list[str]]               # camera -> per-frame base64 JPEG
    composites: list[str]                     # per frame: all cameras in the policy's T-layout, small
    clips: list[ImaginedClip]
    clip_jpegs: list[list[str]]
    videos: dict[str, str]                    # camera -> mp4 path
    state: object
    action: object
    joint_names: list[str]


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


def episode_choices(root: str) -> list[tuple[str, int]]:
    reader = open_reader(root)
    return [(f"#{e.index} · {e.length} frames · {'rollout' if e.has_imagined else 'demo'} · {e.task}", e.index)
            for e in reversed(reader.episodes)]


def load_episode(root: str, index: int) -> LoadedEpisode:
    reader = open_reader(root)
    if not 0 <= index < reader.num_episodes:
        raise gr.Error(f"Episode {index} does not exist; the dataset has {reader.num_episodes} episodes.")
    info = reader.episodes[index]
    cameras = reader.camera_names
    frames = {cam: reader.frames(index, cam) for cam in cameras}
    jpegs = {cam: [jpeg_b64(f, 80) for f in video] for cam, video in frames.items()}
    n = min(len(v) for v in frames.values())
    composites = [jpeg_b64(t_layout([frames[c][i] for c in cameras], width=160), 80) for i in range(n)]
    del frames
    clips = reader.imagined(index)
    table = reader.episode_table(index)
    return LoadedEpisode(root=root, index=index, task=info.task, fps=reader.fps, length=info.length, cameras=cameras,
                         jpegs=jpegs, composites=composites, clips=clips,
                         clip_jpegs=[[jpeg_b64(f, 85) for f in c.frames] for c in clips],
                         videos={cam: str(reader.video_path(index, cam)[0]) for cam in cameras},
                         state=table.state, action=table.action,
                         joint_names=list(reader.spec.state_names))


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


def build_review_tab(dataset_root: str | None, tab: gr.Tab | None = None) -> None:
    """The review widgets, inside the caller's gr.Tab; selecting `tab` refreshes the episode list."""
    cache = EpisodeCache()

    with gr.Row():
        root = gr.Textbox(value=str(Path(dataset_root).resolve()) if dataset_root else "", label="Dataset directory",
                          scale=3, elem_id="review-root")
        refresh = gr.Button("Refresh", scale=0, min_width=100, elem_id="review-refresh")
        episode = gr.Dropdown(choices=[], label="Episode / rollout", scale=4, elem_id="review-episode",
                              allow_custom_value=False)
    summary = gr.Markdown("Pick an episode.", elem_id="review-summary")
    with gr.Row():
        videos = [gr.Video(label=f"camera {i + 1}", interactive=False, visible=False, height=240, autoplay=False)
                  for i in range(MAX_VIDEO_PLAYERS)]
    scrub = gr.Slider(0, 1, value=0, step=1, label="Frame (scrub)", elem_id="review-scrub")
    view = gr.HTML("", elem_id="review-frame")
    joints = gr.Plot(show_label=False, elem_id="review-joints")
    latency = gr.Plot(show_label=False, elem_id="review-latency")

    def do_refresh(path: str):
        choices = episode_choices(path)
        return gr.Dropdown(choices=choices, value=choices[0][1] if choices else None)

    def do_load(path: str, index):
        if index is None:
            return ["Pick an episode.", gr.Slider(), "", None, None] + [gr.Video(visible=False)] * MAX_VIDEO_PLAYERS
        ep = cache.get(path, int(index))
        text = (f"**Episode {ep.index}** · {ep.length} frames at {ep.fps} Hz · task: *{ep.task}* · "
                f"{len(ep.clips)} imagined chunk(s)")
        updates = [gr.Video(value=ep.videos[c], label=c, visible=True) for c in ep.cameras[:MAX_VIDEO_PLAYERS]]
        updates += [gr.Video(visible=False)] * (MAX_VIDEO_PLAYERS - len(updates))
        return [text, gr.Slider(0, max(ep.length - 1, 1), value=0, step=1), frame_html(ep, 0),
                plots.joint_figure(ep.state, ep.action, ep.joint_names, ep.fps, cursor=0),
                plots.chunk_latency_figure([c.start_frame_index for c in ep.clips],
                                           [c.latency_ms for c in ep.clips], ep.fps)] + updates

    def do_scrub(path: str, index, frame):
        if index is None:
            return ""
        return frame_html(cache.get(path, int(index)), int(frame))

    def do_cursor(path: str, index, frame):
        if index is None:
            return None
        ep = cache.get(path, int(index))
        return plots.joint_figure(ep.state, ep.action, ep.joint_names, ep.fps, cursor=int(frame))

    refresh.click(do_refresh, [root], [episode])
    if tab is not None and dataset_root:
        def quiet_refresh(path: str):
            try:
                return do_refresh(path)
            except gr.Error:              # nothing recorded yet: an empty list, no pop-up
                return gr.Dropdown(choices=[], value=None)
        tab.select(quiet_refresh, [root], [episode])
    root.submit(do_refresh, [root], [episode])
    episode.change(do_load, [root, episode], [summary, scrub, view, joints, latency, *videos])
    scrub.change(do_scrub, [root, episode, scrub], [view], show_progress="hidden", trigger_mode="always_last")
    scrub.release(do_cursor, [root, episode, scrub], [joints], show_progress="hidden", trigger_mode="always_last")
