"""Imports point one way: deployments -> routers -> numpy/torch/transformers."""

import ast
import subprocess
import sys
from pathlib import Path

ROUTERS = Path(__file__).resolve().parents[2] / "routers"
FORBIDDEN = ("ray", "fastapi", "vllm", "starlette", "uvicorn", "deployments")


def test_import_routers_loads_no_serving_stack():
    code = (
        "import sys, routers, routers.registry, routers.embeddings, routers.cli\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"importing routers pulled in: {out.stdout.strip()}"


def test_no_routers_module_imports_serving_stack():
    offenders = []
    for path in ROUTERS.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for n in names:
                if n.split(".")[0] in FORBIDDEN:
                    offenders.append(f"{path.relative_to(ROUTERS.parent)}: {n}")
            if isinstance(node, ast.ImportFrom) and node.module == "openai" or (
                isinstance(node, ast.ImportFrom) and (node.module or "").startswith("openai.")
                and any(k in (node.module or "") for k in ("server", "serving"))
            ):
                pass  # the OpenAI *client* is allowed (embeddings); serving parts are not
    assert offenders == [], offenders
