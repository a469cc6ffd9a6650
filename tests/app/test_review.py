import numpy as np

from app.review import t_layout


def test_t_layout_puts_the_first_camera_on_top_and_the_others_below():
    head = np.full((240, 320, 3), 200, np.uint8)
    left = np.full((240, 320, 3), 50, np.uint8)
    right = np.full((240, 320, 3), 100, np.uint8)
    out = t_layout([head, left, right], width=160)
    assert out.shape == (120 + 60, 160, 3)
    assert out[:120].mean() == 200
    assert out[130, :80].mean() == 50 and out[130, 80:].mean() == 100


def write_rollout(root, length=12):
    from policy.episodes.spec import DatasetSpec
    from policy.episodes.writer import DatasetWriter
    spec = DatasetSpec(fps=10, robot_type="test", cameras={"head": (48, 64), "wrist": (48, 64)},
                       state_names=("a", "b"), action_names=("a", "b"))
    with DatasetWriter(root, spec) as writer:
        writer.start_episode("stack the cups")
        for i in range(length):
            img = np.full((48, 64, 3), 10 * i, np.uint8)
            writer.add_frame({"head": img, "wrist": img}, [i * 0.1, 0.0], [i * 0.1 + 0.05, 0.0])
        writer.add_imagined(7, 2, np.full((6, 32, 24, 3), 128, np.uint8), 85.0)
        writer.save_episode()
        writer.wait(timeout=60)


def test_an_episode_loads_for_scrubbing_with_its_imagined_chunk(tmp_path):
    from app.review import clip_at, episode_choices, frame_html, load_episode
    write_rollout(tmp_path / "ds")
    assert episode_choices(str(tmp_path / "ds")) == [("#0 · 12 frames · rollout · stack the cups", 0)]
    ep = load_episode(str(tmp_path / "ds"), 0)
    assert ep.length == 12 and len(ep.jpegs["head"]) == 12 and len(ep.composites) == 12
    assert ep.state.shape == (12, 2) and len(ep.clips) == 1
    assert clip_at(ep, 1) is None and clip_at(ep, 2) == 0 and clip_at(ep, 11) == 0
    early, late = frame_html(ep, 1), frame_html(ep, 3)
    assert "the first chunk starts later" in early
    assert "chunk 7: requested at frame 2, 85 ms" in late and late.count('class="rv-small') == 12
    assert "after the end" in frame_html(ep, 11)      # the imagined steps run past the last frame


def test_a_missing_dataset_directory_says_how_to_fix_it(tmp_path):
    import gradio as gr
    import pytest
    from app.review import open_reader
    with pytest.raises(gr.Error, match="does not exist: record an episode first"):
        open_reader(str(tmp_path / "nope"))
