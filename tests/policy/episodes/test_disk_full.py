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
    for t in range(n):
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


def test_unwritable_during_save(tiny_disk, spec):
    """The directory turns read-only between recording and saving (e.g. a USB disk remounted)."""
    root = tiny_disk / "ds"
    w = DatasetWriter(root, spec, WriterConfig(min_free_mb=0))
    record_episode(w, 8)
    w.wait()
    record_episode(w, 8, save=False)
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], check=True)
    with pytest.raises(DatasetWriteError) as err:
        w.save_episode()
        w.wait()
    assert "episode 1" in str(err.value) or "video encoding" in str(err.value)
    w.close()
    assert DatasetReader(root).num_episodes == 1
