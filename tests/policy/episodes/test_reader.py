"""DatasetReader: clear errors, and only committed episodes are visible."""
import pytest

from policy.episodes import DatasetReader, DatasetSpecError, DatasetWriter

from .conftest import record_episode


def test_not_a_dataset(tmp_path):
    with pytest.raises(DatasetSpecError, match="meta/info.json is missing"):
        DatasetReader(tmp_path)


def test_bad_episode_and_camera_named(tmp_path, spec):
    with DatasetWriter(tmp_path / "ds", spec) as w:
        record_episode(w, 4)
    r = DatasetReader(tmp_path / "ds")
    with pytest.raises(IndexError, match="has 1 episodes"):
        r.frames(1, "head")
    with pytest.raises(KeyError, match="not in this dataset"):
        r.video_path(0, "top")


def test_reader_sees_committed_episodes_only(tmp_path, spec):
    with DatasetWriter(tmp_path / "ds", spec) as w:
        record_episode(w, 4)
        w.wait()
        record_episode(w, 6, save=False)          # in progress: invisible
        r = DatasetReader(tmp_path / "ds")
        assert r.num_episodes == 1 and r.num_frames == 4
        w.save_episode()
        w.wait()
        assert DatasetReader(tmp_path / "ds").num_episodes == 2
