import numpy as np
import pytest
import torch
from diffusers import AutoencoderKLWan

from policy.model.codec import TinyCodec, Wan22Codec, frames_to_tensor, tensor_to_frames


def test_tiny_codec_time_layout():
    codec = TinyCodec(latent_channels=16, spatial_factor=8).eval()
    clip = torch.rand(2, 3, 9, 64, 48) * 2 - 1
    z = codec.encode(clip)
    assert z.shape == (2, 16, 3, 8, 6)                   # 1 + 4k frames -> 1 + k latents
    assert codec.decode(z).shape == clip.shape
    fut = codec.encode_future(clip[:, :, 0], clip[:, :, 1:])
    assert fut.shape == (2, 16, 2, 8, 6)
    assert torch.allclose(fut, z[:, :, 1:], atol=1e-6)
    assert codec.decode_future(z[:, :, :1], fut).shape == (2, 3, 8, 64, 48)
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        codec.encode(clip[:, :, :8])


def test_tiny_codec_learns_and_normalises():
    torch.manual_seed(0)
    codec = TinyCodec(latent_channels=8, spatial_factor=8)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 16), torch.linspace(-1, 1, 16), indexing="ij")
    clip = torch.stack([xx, yy, xx * yy])[None, :, None].expand(1, 3, 5, 16, 16).contiguous()
    opt = torch.optim.Adam(codec.parameters(), lr=3e-3)
    first = codec.reconstruction_loss(clip).item()
    for _ in range(40):
        loss = codec.reconstruction_loss(clip)
        opt.zero_grad(), loss.backward(), opt.step()
    assert loss.item() < 0.5 * first
    with torch.no_grad():
        raw = codec.encode_raw(clip)
        codec.set_latent_stats(raw.mean((0, 2, 3, 4)), raw.std((0, 2, 3, 4)))
        z = codec.encode(clip)
    assert z.mean((0, 2, 3, 4)).abs().max() < 1e-4


def test_frame_tensor_roundtrip():
    frames = np.random.default_rng(0).integers(0, 256, (5, 16, 8, 3), dtype=np.uint8)
    x = frames_to_tensor(frames)
    assert x.shape == (1, 3, 5, 16, 8) and x.min() >= -1 and x.max() <= 1
    assert np.array_equal(tensor_to_frames(x[0]), frames)


def test_wan22_codec_from_local_directory(tmp_path):
    # Wan2.2 VAE structure (residual, patch 2, 4x16x16) at a tiny width, saved and reloaded.
    z = 8
    AutoencoderKLWan(base_dim=8, decoder_base_dim=8, z_dim=z, dim_mult=[1, 2, 2, 2], num_res_blocks=1,
                     temperal_downsample=[False, True, True], is_residual=True, in_channels=12,
                     out_channels=12, patch_size=2, scale_factor_spatial=16, scale_factor_temporal=4,
                     latents_mean=[0.1] * z, latents_std=[2.0] * z).save_pretrained(tmp_path / "vae")
    codec = Wan22Codec.from_pretrained(tmp_path / "vae")
    assert (codec.latent_channels, codec.spatial_factor, codec.temporal_factor) == (z, 16, 4)
    clip = torch.rand(1, 3, 9, 64, 48) * 2 - 1
    lat = codec.encode(clip)
    assert lat.shape == (1, z, 3, 4, 3)
    raw = codec.vae.encode(clip).latent_dist.mode()
    torch.testing.assert_close(lat, (raw - 0.1) / 2.0)   # normalised with latents_mean/std
    out = codec.decode_future(lat[:, :, :1], lat[:, :, 1:])
    assert out.shape == (1, 3, 8, 64, 48) and out.abs().max() <= 1
    with pytest.raises(FileNotFoundError, match="config.json"):
        Wan22Codec.from_pretrained(tmp_path / "missing")


def test_foreground_weight_marks_what_differs_from_the_background():
    from policy.model.codec import foreground_weight
    background = torch.zeros(1, 3, 1, 8, 8)
    frames = torch.zeros(2, 3, 1, 8, 8)
    frames[0, 0, 0, 2:4, 2:4] = 0.9                       # a small red object on plain table
    w = foreground_weight(frames, background, weight=20.0, scale=0.1)
    assert w.shape == (2, 1, 1, 8, 8)
    assert torch.allclose(w[0, 0, 0, 2:4, 2:4], torch.full((2, 2), 21.0))   # |0.9|/3 / 0.1 clamps to 1
    assert torch.all(w[0, 0, 0, :2] == 1.0) and torch.all(w[1] == 1.0)


def test_weighted_reconstruction_loss_counts_the_weighted_pixels_more():
    torch.manual_seed(0)
    codec = TinyCodec(latent_channels=8, spatial_factor=8).eval()
    frames = torch.rand(1, 3, 1, 16, 16) * 2 - 1
    plain = codec.reconstruction_loss(frames)
    assert torch.allclose(codec.reconstruction_loss(frames, torch.ones(1, 1, 1, 16, 16)), plain)
    weight = torch.ones(1, 1, 1, 16, 16)
    weight[..., :8, :] = 5.0
    assert codec.reconstruction_loss(frames, weight) > 2 * plain
