"""app.tools.bench_live: its browser choice. The benchmark itself runs through the same live_stack in
tests/app/tools/test_bench_soak.py's short real soak (plain chromium) and in the note's measurements."""
from __future__ import annotations

import argparse

import pytest

from app.tools import bench_live


def test_an_unknown_browser_is_refused_before_anything_starts(tmp_path):
    with pytest.raises(ValueError, match="choose one of none, plain, playwright"):
        with bench_live.live_stack(str(tmp_path), browser="firefox"):
            pass
    assert not any(tmp_path.iterdir())          # no stack was started, nothing recorded


def test_a_bare_browser_flag_is_an_operators_plain_chromium(monkeypatch):
    parsed = []
    real = argparse.ArgumentParser.parse_args

    def parse_only(self, argv=None, namespace=None):      # stop before the stack starts
        parsed.append(real(self, argv, namespace))
        raise SystemExit(0)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_only)
    for argv, want in ((["--browser"], "plain"), ([], "none"), (["--browser", "playwright"], "playwright")):
        with pytest.raises(SystemExit):
            bench_live.main(argv)
        assert parsed[-1].browser == want
