import subprocess
import sys

from app.harness import REPO


def test_the_console_process_never_imports_torch():
    code = ("import sys, run_demo, app.console, app.stack, app.review, app.recording, app.imagined, "
            "app.controller, app.bench_console; "
            "bad = [m for m in ('torch', 'transformers', 'diffusers') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"app/ pulled in {result.stdout.strip()} {result.stderr[-2000:]}"
