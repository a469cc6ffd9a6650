import pytest

from policy.model.config import PRESETS, WAMConfig, get_preset


def test_paper_token_layout_matches_paper():
    cfg = get_preset("paper-1b")
    assert cfg.token_counts() == {"condition": 120, "future": 60, "action": 21}
    assert cfg.future_latent_shape == (48, 2, 12, 10)
    dense = get_preset("paper-1b-dense")
    assert dense.token_counts()["future"] == 240 and dense.steps == (10, 10)


def test_sim_tiny_token_layout():
    cfg = get_preset("sim-tiny")
    assert cfg.token_counts() == {"condition": 48, "future": 24, "action": 21}
    assert cfg.action_dim == 14 and cfg.horizon == 16 and cfg.future_frames == 8
    assert cfg.cameras == ("head", "left_wrist", "right_wrist")


def test_presets_have_dense_and_teacher_variants():
    for base in ("sim-tiny", "paper-1b"):
        assert {base, base + "-dense", base + "-teacher"} <= set(PRESETS)


def test_config_roundtrip_and_errors():
    cfg = get_preset("sim-tiny")
    assert WAMConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="divisible"):
        cfg.replace(image_height=100)
    with pytest.raises(ValueError, match="num_heads"):
        cfg.replace(video_width=200)
    with pytest.raises(ValueError, match="unknown WAMConfig fields"):
        WAMConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(KeyError, match="sim-tiny"):
        get_preset("nope")


def _params_on_meta(name):
    import torch

    from policy.model.wam import EfficientWAM
    with torch.device("meta"):                       # no memory: shapes only
        return EfficientWAM(get_preset(name)).num_params()


def test_paper_1b_parameter_count():
    n = _params_on_meta("paper-1b")
    assert 0.95e9 <= n["total"] <= 1.05e9
    assert abs(n["video"] / 0.85e9 - 1) < 0.05
    assert abs(n["action"] / 0.14e9 - 1) < 0.05


def test_teachers_are_about_six_times_the_video_expert():
    assert abs(_params_on_meta("paper-1b-teacher")["video"] / 5.0e9 - 1) < 0.05   # Wan2.2-TI2V-5B
    ratio = _params_on_meta("sim-tiny-teacher")["video"] / _params_on_meta("sim-tiny")["video"]
    assert 4.5 < ratio < 7.5


def test_sim_tiny_preset_is_the_shipped_checkpoint():
    """`--preset sim-tiny` (random init, benchmarks, the training default) builds the model the
    demo serves: the benchmark's latency is the product's."""
    import json
    from pathlib import Path
    shipped = Path(__file__).resolve().parents[3] / "assets" / "checkpoints" / "sim-tiny" / "config.json"
    assert WAMConfig.from_dict(json.loads(shipped.read_text())["wam_config"]) == get_preset("sim-tiny")
