import numpy as np
import pytest

from policy.model.observation import compose_t_layout


def _views(h=240, w=320):
    return {"head": np.full((h, w, 3), (200, 0, 0), np.uint8),
            "left_wrist": np.full((h, w, 3), (0, 200, 0), np.uint8),
            "right_wrist": np.full((h // 2, w // 2, 3), (0, 0, 200), np.uint8)}


def test_t_layout_places_views_and_letterboxes():
    out = compose_t_layout(_views(), 384, 320)
    assert out.shape == (384, 320, 3) and out.dtype == np.uint8
    # composite 360x320 (head 240 + wrists 120) is centred: 12 black rows above and below
    assert (out[:12] == 0).all() and (out[-12:] == 0).all()
    assert tuple(out[100, 160]) == (200, 0, 0)          # head on top, full width
    assert tuple(out[320, 80]) == (0, 200, 0)           # left wrist bottom-left
    assert tuple(out[320, 240]) == (0, 0, 200)          # right wrist bottom-right


def test_t_layout_small_target_keeps_aspect():
    out = compose_t_layout(_views(480, 640), 128, 96)
    assert out.shape == (128, 96, 3)
    rows = np.where(out.any(axis=(1, 2)))[0]
    assert 100 <= rows.size <= 110                      # 720x640 scaled by 0.15 -> 108 rows


def test_t_layout_rejects_bad_input():
    v = _views()
    with pytest.raises(ValueError, match="missing.*right_wrist"):
        compose_t_layout({k: v[k] for k in ("head", "left_wrist")}, 128, 96)
    with pytest.raises(ValueError, match="uint8"):
        compose_t_layout({**v, "head": v["head"].astype(np.float32)}, 128, 96)
    with pytest.raises(ValueError, match="HxWx3"):
        compose_t_layout({**v, "head": v["head"][..., 0]}, 128, 96)
