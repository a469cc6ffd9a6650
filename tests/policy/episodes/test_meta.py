"""Statistics merging (exact for mean/std/min/max/count) and atomic metadata writes."""
import json

import numpy as np

from policy.episodes import meta


def test_merged_stats_equal_stats_of_concatenation():
    rng = np.random.default_rng(0)
    parts = [rng.normal(i, 1 + i, size=(n, 5)) for i, n in enumerate((7, 30, 1, 12))]
    merged = None
    for p in parts:
        merged = meta.merge_stats(merged, meta.array_stats(p))
    whole = meta.array_stats(np.concatenate(parts))
    for k in ("mean", "std", "min", "max"):
        np.testing.assert_allclose(merged[k], whole[k], rtol=1e-10, atol=1e-12)
    assert int(merged["count"][0]) == 50


def test_stats_json_round_trip(tmp_path):
    stats = {"action": meta.array_stats(np.arange(12.0).reshape(4, 3))}
    meta.write_json_atomic(tmp_path / "meta/stats.json", meta.stats_to_json(stats))
    back = meta.load_stats(tmp_path)
    np.testing.assert_array_equal(back["action"]["mean"], [4.5, 5.5, 6.5])
    assert not list(tmp_path.rglob("*partial*"))
    json.loads((tmp_path / "meta/stats.json").read_text())


def test_tasks_keep_their_index(tmp_path):
    meta.write_tasks(tmp_path, ["open the drawer", "lift the cube"])
    assert meta.load_tasks(tmp_path) == ["open the drawer", "lift the cube"]
