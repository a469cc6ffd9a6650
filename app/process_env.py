"""The console process's environment: variables its libraries read once, at import or first use.

apply_defaults() must run before mujoco, gradio and pyarrow are imported (the entry points call it
first thing: run_demo.py, app.tools.bench_live, app.tools.bench_soak); a variable the user already set
wins. Why each:
  MUJOCO_GL, PYOPENGL_PLATFORM  offscreen rendering on the CPU (Debian libosmesa6), no display needed
  GRADIO_ANALYTICS_ENABLED      Gradio phones home otherwise
  HF_HUB_OFFLINE                nothing is downloaded at run time
  ARROW_DEFAULT_MEMORY_POOL     pyarrow allocates with glibc malloc instead of the wheel's mimalloc.
                                mimalloc kept what the recorder's parquet writes freed inside its 1 GiB
                                reservation: in a 60-min soak (2026-12-06) that mapping went 6 -> 46 MB and
                                was the console's whole RSS growth; neither pyarrow's release_unused() nor
                                malloc_trim returns it. glibc's free pages are what app.heap_trim gives
                                back. Only the variable works: pa.set_memory_pool() leaves parquet's own
                                buffers on mimalloc, and after `import pyarrow` the variable is read already.
"""
from __future__ import annotations

import os

DEFAULTS: dict[str, str] = {
    "MUJOCO_GL": "osmesa",
    "PYOPENGL_PLATFORM": "osmesa",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_OFFLINE": "1",
    "ARROW_DEFAULT_MEMORY_POOL": "system",
}


def apply_defaults() -> None:
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
