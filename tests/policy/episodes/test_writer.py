"""DatasetWriter: round trip, imagined futures, resume, spec refusal, discard, validation, status."""
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from policy.episodes import DatasetReader, DatasetSpecError, DatasetWriteError, DatasetWriter
from policy.episodes.synthetic import SyntheticFrames, synthetic_spec, synthetic_state

from .conftest import H, W, mean_abs_diff, record_episode


def test_round_trip(tmp_path, spec, frames):
    with DatasetWriter(tmp_path / "ds", spec) as w:
        assert record_episode(w, 20, "lift the cube", 0) == 0
        assert record_episode(w, 12, "open the drawer", 1) == 1
        w.wait()
        assert w.status.episodes_saved == 2 and w.status.queued == 0 and w.status.last_error is None
    r = DatasetReader(tmp_path / "ds")
    assert r.num_episodes == 2 and r.num_frames == 32
    assert [(e.index, e.length, e.task) for e in r.episodes] == [(0, 20, "lift the cube"), (1, 12, "open the drawer")]
    assert r.tasks == ["lift the cube", "open the drawer"]
    for i, cam in enumerate(spec.cameras):
        video = r.frames(1, cam)
        assert video.shape == (12, H, W, 3) and video.dtype == np.uint8
        for t in (0, 5, 11):  # lossy H.264, but close to what was recorded
            assert mean_abs_diff(video[t], frames.frame(t, i)) < 4.0
    table = r.episode_table(1)
    expect_state = np.stack([synthetic_state(t, episode=1) for t in range(12)])
    np.testing.assert_array_equal(table.state, expect_state)
    np.testing.assert_array_equal(table.action, np.stack([synthetic_state(t + 1, episode=1) for t in range(12)]))
    np.testing.assert_allclose(table.timestamp, np.arange(12) / spec.fps, atol=1e-6)
    np.testing.assert_allclose(table.capture_time, 100.0 + np.arange(12) / spec.fps)
    assert (table.task_index == 1).all()
    # global frame index continues across episodes, as LeRobot expects
    data = pq.read_table(tmp_path / "ds/data/chunk-000/file-001.parquet").to_pydict()
    assert data["index"] == list(range(20, 32)) and data["episode_index"] == [1] * 12
    path, t0, t1 = r.video_path(1, "head")
    assert path.name == "file-001.mp4" and t0 == 0.0 and t1 == pytest.approx(12 / spec.fps)


def test_stats_match_numpy(tmp_path, spec):
    with DatasetWriter(tmp_path / "ds", spec) as w:
        record_episode(w, 20, episode_seed=0)
        record_episode(w, 30, episode_seed=1)
        w.wait()
    r = DatasetReader(tmp_path / "ds")
    states = np.concatenate([r.episode_table(e).state for e in range(2)]).astype(np.float64)
    s = r.stats["observation.state"]
    np.testing.assert_allclose(s["mean"], states.mean(0), atol=1e-6)
    np.testing.assert_allclose(s["std"], states.std(0), atol=1e-6)
    np.testing.assert_allclose(s["min"], states.min(0))
    np.testing.assert_allclose(s["max"], states.max(0))
    assert int(s["count"][0]) == 50
    img = r.stats["observation.images.head"]
    assert img["mean"].shape == (3, 1, 1) and 0 < img["mean"].min() and img["max"].max() <= 1


def test_imagined_round_trip(tmp_path, spec):
    odd = np.random.default_rng(0).integers(0, 255, (4, 23, 31, 3), dtype=np.uint8)  # odd size: padded on disk
    odd[:] = odd[:, :1, :1]  # flat colours keep H.264 error small
    with DatasetWriter(tmp_path / "ds", spec) as w:
        record_episode(w, 5)                      # a demonstration: no imagined futures
        w.start_episode("rollout")
        gen = SyntheticFrames(H, W)
        for t in range(20):
            w.add_frame({c: gen.frame(t, i) for i, c in enumerate(spec.cameras)}, np.zeros(14), np.zeros(14))
            if t % 8 == 0:
                w.add_imagined(t // 8, t, odd + t, latency_ms=10.0 + t)
        with pytest.raises(ValueError, match="share a size"):
            w.add_imagined(9, 19, np.zeros((4, 24, 32, 3), np.uint8), 1.0)
        w.save_episode()
        w.wait()
    r = DatasetReader(tmp_path / "ds")
    assert r.imagined(0) == [] and not r.episodes[0].has_imagined and r.episodes[1].has_imagined
    clips = r.imagined(1)
    assert [(c.chunk_index, c.start_frame_index, c.latency_ms) for c in clips] == [(0, 0, 10.0), (1, 8, 18.0),
                                                                                   (2, 16, 26.0)]
    for c, t in zip(clips, (0, 8, 16), strict=True):
        assert c.frames.shape == (4, 23, 31, 3)
        assert mean_abs_diff(c.frames, odd + t) < 3.0


def test_resume_appends(tmp_path, spec):
    with DatasetWriter(tmp_path / "ds", spec) as w:
        record_episode(w, 10, "lift the cube")
    with DatasetWriter(tmp_path / "ds", spec) as w:
        assert w.num_episodes == 1
        assert record_episode(w, 7, "open the drawer") == 1
        assert record_episode(w, 6, "lift the cube") == 2
    with DatasetWriter(tmp_path / "ds") as w:    # no spec: the dataset's own
        assert w.spec == spec
    r = DatasetReader(tmp_path / "ds")
    assert [e.length for e in r.episodes] == [10, 7, 6] and r.tasks == ["lift the cube", "open the drawer"]
    assert r.episode_table(2).task_index[0] == 0 and r.episodes[2].dataset_from_index == 17
    assert int(r.stats["action"]["count"][0]) == 23
    assert r.info["total_frames"] == 23 and r.info["splits"] == {"train": "0:3"}


@pytest.mark.parametrize("change, words", [
    (dict(fps=50), "fps 30 != 50"),
    (dict(cameras=["head", "left_wrist"]), "cameras"),
    (dict(height=96, width=128), "cameras"),
    (dict(robot_type="piper"), "robot_type"),
])
def test_mismatched_spec_refused(tmp_path, spec, change, words):
    with DatasetWriter(tmp_path / "ds", spec) as w:
        record_episode(w, 3)
    other = synthetic_spec(**{"height": H, "width": W, **change})
    with pytest.raises(DatasetSpecError, match=words) as info:
        DatasetWriter(tmp_path / "ds", other)
    assert "new directory" in str(info.value)
    with DatasetWriter(tmp_path / "ds", spec) as w:     # the refusal released the lock
        assert w.num_episodes == 1


def test_refuses_non_dataset_directory(tmp_path, spec):
    (tmp_path / "notes.txt").write_text("not a dataset")
    with pytest.raises(DatasetSpecError, match="not a dataset"):
        DatasetWriter(tmp_path, spec)


def test_one_writer_per_dataset(tmp_path, spec):
    with DatasetWriter(tmp_path / "ds", spec):
        with pytest.raises(DatasetWriteError, match="already open"):
            DatasetWriter(tmp_path / "ds", spec)


def test_discard_leaves_nothing(tmp_path, spec):
    with DatasetWriter(tmp_path / "ds", spec) as w:
        record_episode(w, 8, save=False)
        assert w.status.recording and w.status.frames == 8
        w.discard_episode()
        assert record_episode(w, 4) == 0           # the discarded episode used no index
        w.wait()
    assert DatasetReader(tmp_path / "ds").num_episodes == 1
    assert not list((tmp_path / "ds").rglob("*partial*"))


def test_bad_input_is_named(tmp_path, spec, frames):
    with DatasetWriter(tmp_path / "ds", spec) as w:
        images = {c: frames.frame(0, i) for i, c in enumerate(spec.cameras)}
        with pytest.raises(DatasetWriteError, match="before start_episode"):
            w.add_frame(images, np.zeros(14), np.zeros(14))
        w.start_episode("lift the cube")
        with pytest.raises(ValueError, match="cameras"):
            w.add_frame({"head": images["head"]}, np.zeros(14), np.zeros(14))
        with pytest.raises(ValueError, match=r"expected \(48, 64, 3\) uint8"):
            w.add_frame({**images, "head": images["head"][:, :, 0]}, np.zeros(14), np.zeros(14))
        with pytest.raises(ValueError, match="expects 14 and 14"):
            w.add_frame(images, np.zeros(13), np.zeros(14))
        with pytest.raises(ValueError, match="NaN"):
            w.add_frame(images, np.full(14, np.nan), np.zeros(14))
        with pytest.raises(DatasetWriteError, match="no frames"):
            w.save_episode()
        with pytest.raises(DatasetWriteError, match="already being recorded"):
            w.start_episode("again")


def test_odd_camera_size_refused():
    with pytest.raises(DatasetSpecError, match="even"):
        synthetic_spec(height=47, width=64)


def test_depth_is_lossless(tmp_path, frames):
    spec = synthetic_spec(H, W, depth_cameras=("head",))
    depth = [(np.arange(H * W).reshape(H, W) * 13 + 1000 * t).astype(np.uint16) for t in range(6)]
    with DatasetWriter(tmp_path / "ds", spec) as w:
        w.start_episode("lift the cube")
        images = {c: frames.frame(0, i) for i, c in enumerate(spec.cameras)}
        with pytest.raises(ValueError, match="depth camera 'head'"):
            w.add_frame(images, np.zeros(14), np.zeros(14))
        for d in depth:
            w.add_frame(images, np.zeros(14), np.zeros(14), depth={"head": d})
        w.save_episode()
    r = DatasetReader(tmp_path / "ds")
    np.testing.assert_array_equal(r.depth(0, "head"), np.stack(depth))
    assert r.info["features"]["observation.images.head_depth"]["dtype"] == "image"
    with pytest.raises(KeyError, match="no depth"):
        r.depth(0, "left_wrist")


def test_refuses_appending_to_a_dataset_written_by_lerobot(tmp_path, spec):
    with DatasetWriter(tmp_path / "ds", spec) as w:
        record_episode(w, 3)
    info_path = tmp_path / "ds/meta/info.json"
    info = json.loads(info_path.read_text())
    del info["wam"]                      # what LeRobot's own writer produces
    info_path.write_text(json.dumps(info))
    with pytest.raises(DatasetSpecError, match="not written by policy.episodes"):
        DatasetWriter(tmp_path / "ds", spec)
    assert DatasetReader(tmp_path / "ds").num_episodes == 1   # still readable


def test_the_writer_hands_pyarrow_memory_back_to_the_os():
    """pyarrow's default pool (mimalloc) keeps pages freed by the thread that wrote; release_arrow_memory,
    which the finaliser runs after every episode, returns them (real pyarrow, in a fresh process:
    a busy one has freed pages of its own). The wheel's default pool, as `policy.episodes.generate` runs
    it: the console sets ARROW_DEFAULT_MEMORY_POOL=system (app.process_env), and importing run_demo in
    another test sets it in this process's environment too."""
    import os
    import subprocess
    import sys
    script = """
import json, os, threading
import numpy as np, pyarrow as pa
from app.tools.proc_probes import rss_mb
from policy.episodes.writer import release_arrow_memory
out = {}
def writer_thread():
    bufs = [pa.allocate_buffer(1 << 20) for _ in range(150)]
    for b in bufs:
        np.frombuffer(b, dtype=np.uint8)[:] = 1          # touched: resident
    out["held"] = rss_mb(os.getpid())
    del bufs
    out["freed"] = rss_mb(os.getpid())
    release_arrow_memory()
    out["released"] = rss_mb(os.getpid())
t = threading.Thread(target=writer_thread)
t.start(); t.join()
out["pool"] = pa.default_memory_pool().backend_name
print(json.dumps(out))
"""
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 0, run.stderr
    rss = json.loads(run.stdout.strip().splitlines()[-1])
    if rss["pool"] == "mimalloc":
        assert rss["freed"] > rss["held"] - 20, rss                   # the pool kept what was freed ...
    assert rss["held"] - rss["released"] > 100, rss                  # ... and handed ~150 MB back
