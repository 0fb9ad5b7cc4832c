"""Imports point one way: tools (cli, bench, ops) -> deployments -> routers -> numpy/torch/transformers.

``routers`` never imports the serving stack (ray, fastapi, vllm, ...); ``deployments`` never imports
the tools; the tools do not import each other's packages except through ``cli``, which nothing
imports. Checked on the source (every import statement, also inside functions) and on a real
``import routers``.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVING_STACK = ("ray", "fastapi", "vllm", "starlette", "uvicorn")

#: package -> top-level modules it must never import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "routers": (*SERVING_STACK, "deployments", "bench", "ops", "cli"),
    "deployments": ("bench", "ops", "cli"),
    "bench": ("ops", "cli"),
    "ops": ("bench", "cli"),
    "cli": (),
}


def imported_modules(path: Path) -> list[str]:
    """Absolute module names imported anywhere in ``path`` (top level or inside functions)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def offenders(package_dir: Path, forbidden: tuple[str, ...]) -> list[str]:
    out = []
    for path in sorted(package_dir.rglob("*.py")):
        for name in imported_modules(path):
            if name.split(".")[0] in forbidden:
                out.append(f"{path.relative_to(package_dir.parent)}: {name}")
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_one_way(package):
    assert (REPO / package).is_dir(), f"package {package!r} is gone; update FORBIDDEN"
    assert offenders(REPO / package, FORBIDDEN[package]) == []


def test_the_check_sees_an_import_against_the_direction(tmp_path):
    pkg = tmp_path / "deployments"
    pkg.mkdir()
    (pkg / "ok.py").write_text("import numpy\nfrom routers.base import Router\n")
    (pkg / "bad.py").write_text("def f():\n    from bench.loadtest import loadtest\n")
    assert offenders(pkg, FORBIDDEN["deployments"]) == ["deployments/bad.py: bench.loadtest"]


def test_every_python_package_is_checked():
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")} - {"tests"}
    assert packages == set(FORBIDDEN)


def test_import_routers_loads_no_serving_stack_and_no_openai_sdk():
    # the OpenAI SDK is allowed in routers (the openai: embedder) but only imported when used
    forbidden = (*FORBIDDEN["routers"], "openai")
    code = (
        "import sys, routers, routers.registry, routers.embeddings, routers.calibration\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {forbidden!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"importing routers pulled in: {out.stdout.strip()}"


def test_router_models_are_named_as_the_registry_calls_them():
    from routers.registry import ROUTER_CLASSES

    for name, target in ROUTER_CLASSES.items():
        assert target.split(":")[0] == f"routers.models.{name}", (name, target)


def test_embedders_import_only_the_common_module_of_their_package():
    """No import cycle in routers.embeddings: the embedders share ``common``; only ``factory`` (and
    the package's ``__init__``) import the embedders."""
    pkg = REPO / "routers" / "embeddings"
    for path in pkg.glob("*.py"):
        if path.stem in ("__init__", "factory"):
            continue
        inner = {n for n in imported_modules(path) if n.startswith("routers.embeddings")}
        assert inner <= {"routers.embeddings.common"}, (path.name, inner)


def test_no_two_test_modules_share_a_name():
    """The test folders are not packages, so pytest imports each module by its basename: two
    ``test_x.py`` in different tiers stop the whole suite at collection."""
    from collections import Counter

    names = Counter(p.name for p in (REPO / "tests").rglob("test_*.py"))
    assert not [n for n, c in names.items() if c > 1]
