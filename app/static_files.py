"""The page's JavaScript and CSS, kept as real files under app/static/ (packaged with app/).

console.css goes to Gradio's launch(css_paths=...); each component script (camera tiles, the
imagined future, the status bar, teleop, WebXR teleop) is the js_on_load text of its gr.HTML,
read once here.
"""
from __future__ import annotations

from functools import cache
from pathlib import Path

STATIC = Path(__file__).resolve().parent / "static"


@cache
def script(name: str) -> str:
    """The text of app/static/<name> (e.g. "teleop.js")."""
    path = STATIC / name
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing: the app's static files were not installed "
                                "(reinstall with `pip install -e .`)") from None
