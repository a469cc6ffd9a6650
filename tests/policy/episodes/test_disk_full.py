"""Disk full / unwritable directory: recording stops with a clear error, earlier episodes stay intact.

Uses a real tiny tmpfs (needs root, as on the dev machines and CI); a read-only remount of it
stands for an unwritable directory (chmod does not stop root)."""
import shutil
import subprocess
import uuid

import numpy as np
import pytest

from policy.episodes import DatasetReader, DatasetWriteError, DatasetWriter, WriterConfig

from .conftest import H, W, record_episode


@pytest.fixture
def tiny_disk(tmp_path):
    mnt = tmp_path / f"tmpfs-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(path, leave_bytes: int) -> None:
    free = shutil.disk_usage(path).free
    with open(path / "ballast", "wb") as f:
        f.write(b"\0" * max(free - leave_bytes, 0))


def _noise_frames(writer, n):
    rng = np.random.default_rng(0)  # incompressible: fills the disk fast
    for _ in range(n):
        images = {c: rng.integers(0, 255, (H, W, 3), dtype=np.uint8) for c in writer.spec.cameras}
        writer.add_frame(images, np.zeros(14), np.zeros(14))


def test_disk_full_stops_recording(tiny_disk, spec):
    root = tiny_disk / "ds"
    w = DatasetWriter(root, spec, WriterConfig(min_free_mb=0))
    record_episode(w, 10)
    w.wait()
    _fill(tiny_disk, 40_000)
    with pytest.raises(DatasetWriteError) as err:
        w.start_episode("lift the cube")
        _noise_frames(w, 60)          # ffmpeg may die while recording: add_frame raises
        w.save_episode()
        w.wait()                      # or when the episode is finalised
    msg = str(err.value)
    print(msg)
    assert "full" in msg and str(tiny_disk) in msg, msg
    assert w.status.last_error is not None
    with pytest.raises(DatasetWriteError, match="recording stopped"):
        w.start_episode("again")
    w.close()
    r = DatasetReader(root)
    assert r.num_episodes == 1 and r.frames(0, "head").shape == (10, H, W, 3)
    # after freeing space the dataset is reopened and recording goes on
    (tiny_disk / "ballast").unlink()
    with DatasetWriter(root, spec, WriterConfig(min_free_mb=0)) as w2:
        assert record_episode(w2, 6) == 1
    assert [e.length for e in DatasetReader(root).episodes] == [10, 6]


def test_low_disk_refused_at_start(tiny_disk, spec):
    with DatasetWriter(tiny_disk / "ds", spec, WriterConfig(min_free_mb=4)) as w:
        with pytest.raises(DatasetWriteError, match="MB free"):
            w.start_episode("lift the cube")


def test_unwritable_directory(tiny_disk, spec):
    root = tiny_disk / "ds"
    with DatasetWriter(root, spec, WriterConfig(min_free_mb=0)) as w:
        record_episode(w, 8)
        w.wait()
        subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], check=True)
        with pytest.raises(DatasetWriteError, match="not writable"):
            w.start_episode("lift the cube")
    r = DatasetReader(root)
    assert r.num_episodes == 1 and r.frames(0, "left_wrist").shape == (8, H, W, 3)


def test_failed_commit_keeps_earlier_episodes(tmp_path, spec):
    """A write that fails while an episode is committed (here: its data file's temp name is taken
    by a directory) stops recording; the dataset stays at the episodes saved before."""
    root = tmp_path / "ds"
    w = DatasetWriter(root, spec)
    record_episode(w, 8)
    w.wait()
    (root / "data/chunk-000/file-001.parquet.partial").mkdir()
    record_episode(w, 8)
    with pytest.raises(DatasetWriteError, match="saving episode 1") as err:
        w.wait()
    assert "episodes saved before are intact" in str(err.value)
    with pytest.raises(DatasetWriteError, match="recording stopped"):
        w.start_episode("again")
    w.close()
    r = DatasetReader(root)
    assert r.num_episodes == 1 and r.info["total_frames"] == 8
    assert not (root / "videos/observation.images.head/chunk-000/file-001.mp4").exists()
    (root / "data/chunk-000/file-001.parquet.partial").rmdir()
    with DatasetWriter(root, spec) as w2:
        assert record_episode(w2, 5) == 1
    assert [e.length for e in DatasetReader(root).episodes] == [8, 5]
