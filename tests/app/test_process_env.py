"""app.process_env through the console's real entry point, in fresh interpreters: pyarrow on glibc malloc
(its parquet buffers too: no mimalloc reservation appears), the user's own setting wins."""
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, numpy as np
import run_demo                                   # the entry point applies the defaults before its imports
import pyarrow as pa, pyarrow.parquet as pq
for _ in range(5):                                # the recorder's kind of work: parquet written and read back
    pq.write_table(pa.table({"a": np.random.rand(200_000)}), PATH)
    pq.read_table(PATH)
spans = [int(b, 16) - int(a, 16) for a, b in (line.split()[0].split("-") for line in open("/proc/self/maps"))]
print(json.dumps({"pool": pa.default_memory_pool().backend_name, "gib_maps": sum(s >= 2**30 for s in spans)}))
"""


def run(tmp_path, **env_overrides) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    env.update(env_overrides)
    out = subprocess.run([sys.executable, "-c", SCRIPT.replace("PATH", repr(str(tmp_path / "t.parquet")))], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_console_process_runs_pyarrow_on_glibc(tmp_path):
    assert run(tmp_path) == {"pool": "system", "gib_maps": 0}


def test_a_pool_the_user_chose_wins(tmp_path):
    got = run(tmp_path, ARROW_DEFAULT_MEMORY_POOL="mimalloc")
    assert got["pool"] == "mimalloc" and got["gib_maps"] >= 1        # mimalloc's 1 GiB reservation
