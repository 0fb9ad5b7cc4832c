"""Operations: ``rayroute k8s render|validate`` (the KubeRay manifests) and ``rayroute
build-weak-model`` (the tiny local weak model)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from routers.paths import REPO_ROOT


def _render_cmd(args: argparse.Namespace) -> int:
    from ops.k8s import render_all

    problems = render_all(args.profile or None, check=args.check, serve_config=args.serve_config)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print("run `rayroute k8s render` and commit the result", file=sys.stderr)
    return 1 if problems else 0


def _validate_cmd(args: argparse.Namespace) -> int:
    from ops.k8s import K8S_VERSION, default_manifests, load_documents, validate_files

    paths = [Path(p) for p in args.files] or default_manifests()
    if not paths:
        print("error: no manifests to validate", file=sys.stderr)
        return 2
    problems = validate_files(paths, args.schemas)
    for p in problems:
        print(p, file=sys.stderr)
    n_docs = sum(len(load_documents(p)) for p in paths)
    status = "FAILED" if problems else "ok"
    print(f"validated {n_docs} objects in {len(paths)} files (CRD schema, Kubernetes {K8S_VERSION}, Serve, AppArgs): {status}")
    return 1 if problems else 0


def _build_weak_model_cmd(args: argparse.Namespace) -> int:
    from ops.weak_model_builder import build_tiny_llama

    path = build_tiny_llama(args.out, force=args.force)
    print(path)
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("k8s", help="render and validate the KubeRay manifests in k8s/ (offline)")
    k8s_sub = p.add_subparsers(dest="k8s_command", metavar="ACTION", required=True)
    r = k8s_sub.add_parser("render", help="generate k8s/rayservice-<profile>.yaml from serve_config.yaml + k8s/profiles/")
    r.add_argument("profile", nargs="*", help="profile names (default: every k8s/profiles/*.yaml)")
    r.add_argument("--check", action="store_true", help="write nothing; exit 1 if a committed manifest differs")
    r.add_argument("--serve-config", default=None, help="the base Serve config (default: serve_config.yaml)")
    r.set_defaults(func=_render_cmd)
    v = k8s_sub.add_parser("validate", help="validate manifests against the KubeRay CRDs, Kubernetes, Serve and AppArgs")
    v.add_argument("files", nargs="*", help="manifest files (default: k8s/*.yaml)")
    v.add_argument("--schemas", default=None, help="folder of the KubeRay CRDs (default: $RAYROUTE_SCHEMAS/kuberay or ../shared/schemas/kuberay)")
    v.set_defaults(func=_validate_cmd)
    p = sub.add_parser(
        "build-weak-model",
        help="build the tiny random Llama (answers are noise) used as the weak model when no real one is configured",
    )
    p.add_argument("--out", default=str(REPO_ROOT / "models" / "tiny-llama"), help="output directory (default: models/tiny-llama)")
    p.add_argument("--force", action="store_true", help="rebuild even if it exists")
    p.set_defaults(func=_build_weak_model_cmd)
