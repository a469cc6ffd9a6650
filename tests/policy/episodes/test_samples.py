"""TrainingSamples: shapes, padding at the episode end, values, memory-mapped cache."""
import numpy as np
import pytest

from policy.episodes import DatasetReader, DatasetWriter
from policy.episodes.samples import SampleConfig, TrainingSamples

from .conftest import H, W, mean_abs_diff, record_episode


@pytest.fixture
def dataset(tmp_path, spec):
    with DatasetWriter(tmp_path / "ds", spec) as w:
        record_episode(w, 20, "lift the cube", 0)
        record_episode(w, 24, "open the drawer", 1)
    return tmp_path / "ds"


def test_sample_shapes_and_values(dataset):
    s = TrainingSamples(dataset)                      # H=16, 8 future frames every 2nd action
    assert len(s) == 44 and s.estimated_cache_bytes() == 44 * 3 * H * W * 3
    x = s[20]                                         # first frame of episode 1
    assert (x["episode_index"], x["frame_index"], x["task"]) == (1, 0, "open the drawer")
    assert set(x["images"]) == {"head", "left_wrist", "right_wrist"}
    assert x["images"]["head"].shape == (H, W, 3) and x["images"]["head"].dtype == np.uint8
    assert x["future"]["right_wrist"].shape == (8, H, W, 3)
    assert x["actions"].shape == (16, 14) and x["actions"].dtype == np.float32
    assert x["state"].shape == (14,) and x["action_is_pad"].shape == (16,) and x["future_is_pad"].shape == (8,)
    assert not x["action_is_pad"].any() and not x["future_is_pad"].any()
    table = DatasetReader(dataset).episode_table(1)
    np.testing.assert_array_equal(x["actions"], table.action[:16])
    np.testing.assert_array_equal(x["state"], table.state[0])
    frames = s.episode_frames(1)["head"]
    for k in range(8):                                 # future k is frame 2*(k+1)
        assert mean_abs_diff(x["future"]["head"][k], frames[2 * (k + 1)]) == 0
    assert s.cache_bytes == 2 * 3 * 0 + 24 * 3 * H * W * 3   # only episode 1 decoded so far


def test_padding_at_episode_end(dataset):
    s = TrainingSamples(dataset)
    x = s[19]                                          # last frame of episode 0 (20 frames)
    assert (x["episode_index"], x["frame_index"]) == (0, 19)
    assert x["action_is_pad"].tolist() == [False] + [True] * 15
    assert x["future_is_pad"].all()
    np.testing.assert_array_equal(x["actions"][5], x["actions"][0])      # last action repeated
    x = s[-1]
    assert (x["episode_index"], x["frame_index"]) == (1, 23)
    with pytest.raises(IndexError):
        s[44]


def test_resized_cache_on_disk(dataset, tmp_path):
    cfg = SampleConfig(horizon=4, future_frames=2, future_stride=3, image_size={"head": (24, 32)},
                       cameras=("head", "left_wrist"), cache_dir=str(tmp_path / "cache"))
    s = TrainingSamples(dataset, cfg, episodes=[1])
    assert len(s) == 24
    s.preload()
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2
    x = s[3]
    assert x["images"]["head"].shape == (24, 32, 3) and x["images"]["left_wrist"].shape == (H, W, 3)
    assert x["future"]["head"].shape == (2, 24, 32, 3) and x["actions"].shape == (4, 14)
    assert isinstance(s.episode_frames(1)["head"], np.memmap)
    s2 = TrainingSamples(dataset, cfg, episodes=[1])   # a second reader reuses the cache files
    np.testing.assert_array_equal(s2[3]["future"]["head"], x["future"]["head"])


def test_bad_config_named(dataset):
    with pytest.raises(KeyError, match="not in the dataset"):
        TrainingSamples(dataset, SampleConfig(cameras=("top",)))
    with pytest.raises(ValueError, match="horizon"):
        SampleConfig(horizon=0)
