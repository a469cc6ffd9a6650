import numpy as np
import pytest
import torch

from policy.model.checkpoint import prefixed, save_checkpoint
from policy.wire.types import Observation
from policy.serving.wam_runner import NormStats, load_runner


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def runner():
    return load_runner(seed=3)


def _obs(instruction="put the red block on the plate", state=None, seed=0):
    rng = np.random.default_rng(seed)
    images = {c: rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
              for c in ("head", "left_wrist", "right_wrist")}
    return Observation(images, np.zeros(14, np.float32) if state is None else state, instruction)


def test_metadata(runner):
    m = runner.metadata
    assert (m.preset, m.action_dim, m.chunk_length, m.steps) == ("sim-tiny", 14, 16, [2, 10])
    assert m.camera_names == ["head", "left_wrist", "right_wrist"]
    assert m.future_frames == 8 and m.preview_size == [64, 48]
    assert m.scene_prefix and m.to_dict()["protocol_version"] == 1


def test_infer_then_preview(runner):
    a = runner.infer(_obs())
    b = runner.infer(_obs(seed=1))
    assert a.actions.shape == (16, 14) and a.actions.dtype == np.float32
    assert np.isfinite(a.actions).all() and b.chunk_id == a.chunk_id + 1
    assert {"inference", "text", "encode", "sample"} <= set(a.timings_ms)
    video = runner.preview(b.chunk_id)
    assert video.shape == (8, 64, 48, 3) and video.dtype == np.uint8


def test_old_and_unknown_previews_raise(runner):
    first = runner.infer(_obs()).chunk_id
    for _ in range(runner.keep_previews):
        runner.infer(_obs())
    with pytest.raises(KeyError):
        runner.preview(first)
    with pytest.raises(KeyError):
        runner.preview(10**6)


def test_bad_observation_is_rejected(runner):
    with pytest.raises(ValueError, match="expected \\(14,\\)"):
        runner.infer(_obs(state=np.zeros(7, np.float32)))
    with pytest.raises(ValueError, match="NaN"):
        runner.infer(_obs(state=np.full(14, np.nan, np.float32)))
    with pytest.raises(ValueError, match="missing"):
        runner.infer(Observation({"head": np.zeros((240, 320, 3), np.uint8)}, np.zeros(14, np.float32), "x"))


def test_checkpoint_roundtrip_reproduces_actions_and_applies_norm(tmp_path, runner):
    torch.nn.init.normal_(runner.model.action.head.weight, std=0.05)    # make actions depend on weights
    norm = NormStats(np.zeros(14, np.float32), np.ones(14, np.float32),
                     np.linspace(-1, 1, 14).astype(np.float32), np.full(14, 0.1, np.float32))
    state = {**prefixed(runner.model.state_dict(), "wam"), **prefixed(runner.codec.state_dict(), "codec")}
    save_checkpoint(tmp_path, state, {"preset": "sim-tiny", "wam_config": runner.cfg.to_dict(),
                                      "norm_stats": norm.to_dict()})
    r1, r2 = load_runner(str(tmp_path), seed=7), load_runner(str(tmp_path), seed=7)
    a1, a2 = r1.infer(_obs()).actions, r2.infer(_obs()).actions
    np.testing.assert_array_equal(a1, a2)
    r1.norm = NormStats.identity(14)
    raw = load_runner(str(tmp_path), seed=7)
    raw.norm = NormStats.identity(14)
    np.testing.assert_allclose(a1, raw.infer(_obs()).actions * norm.action_std + norm.action_mean,
                               rtol=1e-5, atol=1e-5)
    assert abs(float(a1.mean()) - float(norm.action_mean.mean())) < 0.5


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a checkpoint"):
        load_runner(str(tmp_path / "nope"))


def test_video_free_runner_has_no_preview():
    r = load_runner(steps=(0, 4))
    chunk = r.infer(_obs())
    assert chunk.actions.shape == (16, 14) and r.metadata.future_frames == 0
    assert r.preview(chunk.chunk_id).shape == (0, 64, 48, 3)     # nothing imagined
    with pytest.raises(KeyError):
        r.preview(chunk.chunk_id + 1)


def test_paper_pipeline_with_umt5_and_wan_vae_from_local_directories(tmp_path):
    """paper-1b's parts (umT5 text, Wan2.2 VAE, 384x320 T-layout, 120 + 60 + 21 tokens) at toy width."""
    from diffusers import AutoencoderKLWan
    from transformers import AutoTokenizer, UMT5Config, UMT5EncoderModel

    from policy.model.config import get_preset
    from policy.model.text import minilm_dir
    from policy.model.wam import EfficientWAM
    z = 8
    AutoencoderKLWan(base_dim=8, decoder_base_dim=8, z_dim=z, dim_mult=[1, 2, 2, 2], num_res_blocks=1,
                     temperal_downsample=[False, True, True], is_residual=True, in_channels=12,
                     out_channels=12, patch_size=2, scale_factor_spatial=16, scale_factor_temporal=4,
                     latents_mean=[0.0] * z, latents_std=[1.0] * z).save_pretrained(tmp_path / "vae")
    UMT5EncoderModel(UMT5Config(vocab_size=30522, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4,
                                relative_attention_num_buckets=8)).save_pretrained(tmp_path / "umt5")
    AutoTokenizer.from_pretrained(str(minilm_dir())).save_pretrained(tmp_path / "umt5")
    cfg = get_preset("paper-1b").replace(name="paper-1b-toy", video_layers=2, video_width=64, video_ffn=128,
                                         num_heads=2, head_dim=32, action_width=32, action_ffn=64,
                                         latent_channels=z, text_dim=32, text_len=24)
    assert cfg.token_counts() == {"condition": 120, "future": 60, "action": 21}
    save_checkpoint(tmp_path / "ck", prefixed(EfficientWAM(cfg).state_dict(), "wam"),
                    {"preset": "paper-1b", "wam_config": cfg.to_dict()})
    r = load_runner(str(tmp_path / "ck"), text_dir=str(tmp_path / "umt5"), vae_dir=str(tmp_path / "vae"))
    chunk = r.infer(_obs())
    assert chunk.actions.shape == (16, 14) and np.isfinite(chunk.actions).all()
    assert r.preview(chunk.chunk_id).shape == (8, 192, 160, 3)
    with pytest.raises(ValueError, match="vae_dir"):
        load_runner(str(tmp_path / "ck"), text_dir=str(tmp_path / "umt5"))


def test_compiled_runner_warms_up_at_load_and_forgets_the_warm_up():
    """load_runner(compile=True) builds the graphs before returning (policy.server does this before
    its ready line) and the warm-up leaves no trace: the first real chunk gets id 0 and the noise a
    fresh eager runner with the same seed draws, so its actions match to compile's rounding."""
    torch._dynamo.reset()
    compiled = load_runner(seed=5, compile=True)
    eager = load_runner(seed=5)
    a, b = compiled.infer(_obs()), eager.infer(_obs())
    assert a.chunk_id == b.chunk_id == 0
    np.testing.assert_allclose(a.actions, b.actions, atol=1e-4)
    assert "warm up" not in compiled._text_kv
