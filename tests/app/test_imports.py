"""The console's process never imports torch, and reaches policy/ only through policy.wire (plus
the torch-free dataset format policy.episodes, which DESIGN.md shares with app/, and
policy.serving.process, the torch-free launcher run_demo uses to start its policy child, and
policy.child_process, how both of those start children)."""
import json
import subprocess
import sys

from app.tools.harness import REPO

ALLOWED = ("policy.wire", "policy.episodes", "policy.child_process")


def _imported_after(statement: str) -> dict:
    code = (f"import sys, json; {statement}; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'transformers', 'diffusers', 'policy'))))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_app_console_pulls_in_no_torch_and_only_the_wire():
    modules = _imported_after("import app.console")
    heavy = [m for m in modules if m.split(".")[0] in ("torch", "transformers", "diffusers")]
    assert not heavy, f"app.console pulled in {heavy}"
    policy = [m for m in modules if m.startswith("policy.")]
    assert any(m.startswith("policy.wire") for m in policy)      # the check can see what it forbids
    assert all(m.startswith(ALLOWED) for m in policy), [m for m in policy if not m.startswith(ALLOWED)]


def test_the_whole_console_process_never_imports_torch():
    modules = _imported_after(
        "import run_demo, app.console, app.stack, app.review, app.recording, app.imagined, "
        "app.control.controller, app.control.action_queue, app.tools.bench_console")
    assert not [m for m in modules if not m.startswith("policy")], modules
    policy = [m for m in modules if m.startswith("policy.")]
    assert all(m.startswith(ALLOWED) or m == "policy.serving.process" or m == "policy.serving" for m in policy), policy
