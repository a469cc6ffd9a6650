"""policy.episodes is shared with app/, which must never import torch."""
import subprocess
import sys
from pathlib import Path


def test_package_is_torch_free():
    code = ("import sys, policy.episodes, policy.episodes.generate, policy.episodes.bench; "
            "assert 'torch' not in sys.modules, 'policy.episodes imported torch'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[3], timeout=60)
