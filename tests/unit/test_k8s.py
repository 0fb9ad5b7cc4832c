"""The KubeRay manifests in k8s/: generated from serve_config.yaml (no drift), same application,
valid offline against the KubeRay CRDs / Kubernetes / Serve / AppArgs — and every validator is
shown to reject a broken manifest (misspelled field, wrong type, missing required field).

The CRDs are read from ../shared/schemas (or $RAYROUTE_SCHEMAS), never copied into the repository;
tests that need them skip, loudly, only when that folder is absent.
"""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from ops import k8s
from routers.paths import REPO_ROOT

REPO = REPO_ROOT
PROFILES = ["cpu", "gpu"]
MANIFESTS = {p: REPO / "k8s" / f"rayservice-{p}.yaml" for p in PROFILES}
SECRETS = REPO / "k8s" / "secrets.template.yaml"


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crds() -> str:
    root = k8s.schemas_dir() / "kuberay"
    if not root.is_dir():
        pytest.skip(f"KubeRay CRDs not found at {root} (set RAYROUTE_SCHEMAS): CRD validation NOT run")
    return str(root)


@pytest.fixture
def serve_config() -> dict:
    assert k8s.SERVE_CONFIG.is_file(), "serve_config.yaml is missing at the repository root"
    return yaml.safe_load(k8s.SERVE_CONFIG.read_text())


def docs_of(profile: str) -> list[dict]:
    return k8s.load_documents(MANIFESTS[profile])


def rayservice(profile: str) -> dict:
    (rs,) = [d for d in docs_of(profile) if d["kind"] == "RayService"]
    return rs


def serve_of(rs: dict) -> dict:
    return yaml.safe_load(rs["spec"]["serveConfigV2"])


def set_serve(rs: dict, config: dict) -> None:
    rs["spec"]["serveConfigV2"] = yaml.safe_dump(config, sort_keys=False)


def containers(rs: dict) -> list[dict]:
    return [c for _, tpl in k8s._pod_templates(rs["spec"]) for c in tpl["spec"]["containers"]]


def problems_of(doc: dict, crds: str | None, *, validators: set[str] | None = None) -> list[k8s.Problem]:
    out = k8s.validate_document(doc, "test", crds)
    return [p for p in out if validators is None or p.validator in validators]


# --- render: deterministic, committed files equal the render ----------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_committed_manifest_equals_render(profile):
    rendered = k8s.render(profile)
    assert rendered == k8s.render(profile), "render is not deterministic"
    assert MANIFESTS[profile].read_text(encoding="utf-8") == rendered, (
        f"{MANIFESTS[profile].name} drifted from serve_config.yaml + k8s/profiles/{profile}.yaml: "
        "run `rayroute k8s render` and commit"
    )
    assert "&id0" not in rendered and "*id0" not in rendered, "YAML anchors leaked into the manifest"


def test_render_check_reports_drift(tmp_path, capsys):
    (tmp_path / "profiles").mkdir()
    prof = tmp_path / "profiles" / "gpu.yaml"
    prof.write_text((REPO / "k8s" / "profiles" / "gpu.yaml").read_text())
    out = tmp_path / "rayservice-gpu.yaml"
    assert k8s.render_all([str(prof)], check=True) != []  # missing output = drift
    assert k8s.render_all([str(prof)]) == [] and out.is_file()
    assert k8s.render_all([str(prof)], check=True) == []
    out.write_text(out.read_text().replace("maxReplicas: 4", "maxReplicas: 40", 1))
    (problem,) = k8s.render_all([str(prof)], check=True)
    assert "maxReplicas: 40" in problem and "differs" in problem


@pytest.mark.parametrize("base_deployments", [[{"name": "Ingress", "num_replicas": 1}], None])
def test_overlay_cannot_add_a_deployment(tmp_path, base_deployments):
    app = {"name": "app", "import_path": "deployments.app:build_app", "args": {}}
    if base_deployments:
        app["deployments"] = base_deployments
    base = tmp_path / "serve_config.yaml"
    base.write_text(yaml.safe_dump({"applications": [app]}))
    prof = tmp_path / "p.yaml"
    rayservice_doc = {"apiVersion": "ray.io/v1", "kind": "RayService", "metadata": {"name": "x"}, "spec": {}}
    overlay = {"applications": [{"name": "app", "deployments": [{"name": "NoSuchDeployment", "num_replicas": 1}]}]}
    prof.write_text(yaml.safe_dump({"serve": overlay, "manifests": [rayservice_doc]}))
    with pytest.raises(k8s.K8sError, match="NoSuchDeployment"):
        k8s.render(str(prof), base)
    prof.write_text(yaml.safe_dump({"serve": {"applications": [{"name": "other"}]}, "manifests": [rayservice_doc]}))
    with pytest.raises(k8s.K8sError, match="other"):
        k8s.render(str(prof), base)


def test_merge_rules():
    base = {"a": 1, "b": {"c": 2, "d": 3}, "l": [{"name": "x", "v": 1}, {"name": "y", "v": 2}], "s": [1, 2]}
    over = {"b": {"c": 20, "d": None}, "l": [{"name": "y", "v": 3}], "s": [9], "n": "new"}
    assert k8s.merge(base, over) == {
        "a": 1, "b": {"c": 20}, "l": [{"name": "x", "v": 1}, {"name": "y", "v": 3}], "s": [9], "n": "new",
    }
    assert base["b"] == {"c": 2, "d": 3}, "merge modified its input"
    with pytest.raises(k8s.K8sError, match="'z'"):
        k8s.merge(base, {"l": [{"name": "z"}]})
    # routers are named by alias: a profile changes one router and keeps the others
    routers = [{"alias": "mf", "t": 0.7}, {"alias": "mf_static", "t": 0.8}]
    assert k8s.merge(routers, [{"alias": "mf_static", "deployment": {"num_gpus": 0}}]) == [
        {"alias": "mf", "t": 0.7}, {"alias": "mf_static", "t": 0.8, "deployment": {"num_gpus": 0}}]
    with pytest.raises(k8s.K8sError, match="'bert'"):
        k8s.merge(routers, [{"alias": "bert"}])


# --- same application as serve_config.yaml ----------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_manifest_holds_the_same_application(profile, serve_config):
    ours = serve_of(rayservice(profile))
    assert [a["name"] for a in ours["applications"]] == [a["name"] for a in serve_config["applications"]]
    for mine, base in zip(ours["applications"], serve_config["applications"]):
        assert mine["import_path"] == base["import_path"] == "deployments.app:build_app"
        assert mine.get("route_prefix") == base.get("route_prefix")
        assert [d["name"] for d in mine.get("deployments", [])] == [d["name"] for d in base.get("deployments", [])]
        assert sorted(mine.get("args") or {}) == sorted(base.get("args") or {})
    assert (ours.get("http_options") or {}).get("port", 8000) == 8000


# --- the committed manifests validate ---------------------------------------------------------------


def test_committed_manifests_validate(crds):
    paths = k8s.default_manifests()
    assert {p.name for p in paths} >= {"rayservice-gpu.yaml", "rayservice-cpu.yaml", "secrets.template.yaml"}
    problems = k8s.validate_files(paths, crds)
    assert problems == [], "\n".join(map(str, problems))


def test_cli_render_check_and_validate(crds, tmp_path, capsys, monkeypatch):
    from cli.main import main

    monkeypatch.setenv("RAYROUTE_SCHEMAS", str(Path(crds).parent))
    assert main(["k8s", "render", "--check"]) == 0
    assert main(["k8s", "validate"]) == 0
    bad = tmp_path / "bad.yaml"
    rs = rayservice("cpu")
    rs["spec"]["rayClusterConfig"]["enableInTreeAutoscalling"] = True
    bad.write_text(yaml.safe_dump(rs))
    assert main(["k8s", "validate", str(bad)]) == 1
    assert "enableInTreeAutoscalling" in capsys.readouterr().err


def test_missing_crds_fail_loudly(tmp_path):
    with pytest.raises(k8s.K8sError, match="KubeRay CRDs not found"):
        k8s.crd_schemas(str(tmp_path / "nope"))


# --- each validator rejects a broken manifest -------------------------------------------------------


def _rc(d):
    return d["spec"]["rayClusterConfig"]


def _head_container(d):
    return _rc(d)["headGroupSpec"]["template"]["spec"]["containers"][0]


CRD_BREAKAGES = {
    "misspelled field": (lambda d: _rc(d).update(enableInTreeAutoscalling=True), "enableInTreeAutoscalling"),
    "misspelled nested pod field": (lambda d: _head_container(d).update(imagee="x"), "imagee"),
    "misspelled metadata field": (lambda d: d["metadata"].update(lables={"a": "b"}), "lables"),
    "wrong type": (lambda d: _rc(d)["workerGroupSpecs"][0].update(maxReplicas="four"), "maxReplicas"),
    "wrong type (float quantity)": (lambda d: _head_container(d)["resources"]["limits"].update(cpu=0.5), "cpu"),
    "missing required field": (lambda d: _rc(d)["workerGroupSpecs"][0].pop("groupName"), "groupName"),
    "missing required container name": (lambda d: _head_container(d).pop("name"), "name"),
    "bad enum": (lambda d: _rc(d)["autoscalerOptions"].update(version="v3"), "v3"),
}


@pytest.mark.parametrize("case", sorted(CRD_BREAKAGES))
def test_crd_validator_rejects(case, crds):
    rs = rayservice("gpu")
    assert problems_of(rs, crds, validators={"crd"}) == []
    breaker, needle = CRD_BREAKAGES[case]
    breaker(rs)
    problems = problems_of(rs, crds, validators={"crd"})
    assert problems, f"CRD validation accepted: {case}"
    assert any(needle in str(p) for p in problems), problems


def test_crd_schema_is_made_strict_and_maps_int_or_string():
    schema = k8s.strict_schema(
        {
            "type": "object",
            "properties": {
                "q": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                "p": {"x-kubernetes-int-or-string": True},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {"a": {"type": "string"}}},
                "m": {"type": "object", "additionalProperties": {"type": "string"}},
                "n": {"type": "string", "nullable": True},
            },
        }
    )
    import jsonschema

    v = jsonschema.Draft7Validator(schema)
    assert v.is_valid({"q": 1, "p": "50%", "free": {"b": 1}, "m": {"k": "v"}, "n": None})
    assert v.is_valid({"p": 3})
    assert not v.is_valid({"p": 1.5})
    assert not v.is_valid({"unknown": 1})
    assert not v.is_valid({"m": {"k": 1}})


@pytest.mark.parametrize(
    "case,breaker,needle",
    [
        ("misspelled field", lambda d: d["spec"].update(selectr={}), "selectr"),
        ("wrong type", lambda d: d["spec"]["ports"][0].update(port="eighty"), "eighty"),
        ("missing required field", lambda d: d["spec"]["ports"][0].pop("port"), "port"),
    ],
)
def test_kubernetes_validator_rejects_service(case, breaker, needle):
    (svc,) = [d for d in docs_of("gpu") if d["kind"] == "Service"]
    assert problems_of(svc, None) == []  # plain objects: kubernetes-validate only, no CRDs needed
    breaker(svc)
    problems = problems_of(svc, None, validators={"kubernetes"})
    assert problems and any(needle in str(p) for p in problems), f"kubernetes-validate accepted: {case}"


def test_kubernetes_validator_rejects_secret():
    secret = k8s.load_documents(SECRETS)[0]
    assert problems_of(secret, None) == []
    for breaker, needle in [
        (lambda d: d.update(stringDta=d.pop("stringData")), "stringDta"),
        (lambda d: d.update(type=["Opaque"]), "type"),
        (lambda d: d.pop("kind"), "kind"),
    ]:
        broken = copy.deepcopy(secret)
        breaker(broken)
        problems = problems_of(broken, None)
        assert problems and any(needle in str(p) for p in problems), broken


def _dep(c, i=0):
    return c["applications"][0].setdefault("deployments", [{"name": "Ingress"}])[i]


SERVE_BREAKAGES = {
    "misspelled deployment field": (lambda c: _dep(c).update(num_replica=2), "num_replica"),
    "misspelled top-level field": (lambda c: c.update(aplications=[]), "aplications"),
    "misspelled actor option": (lambda c: _dep(c).setdefault("ray_actor_options", {}).update(num_gpu=1), "num_gpu"),
    "misspelled autoscaling field": (lambda c: _dep(c).update(autoscaling_config={"max_replica": 2}), "max_replica"),
    "wrong type": (lambda c: _dep(c).update(max_ongoing_requests="lots"), "max_ongoing_requests"),
    "missing required field": (lambda c: c["applications"][0].pop("import_path"), "import_path"),
}


@pytest.mark.parametrize("case", sorted(SERVE_BREAKAGES))
def test_serve_validator_rejects(case, crds):
    rs = rayservice("gpu")
    config = serve_of(rs)
    breaker, needle = SERVE_BREAKAGES[case]
    breaker(config)
    set_serve(rs, config)
    problems = problems_of(rs, crds, validators={"serve"})
    assert problems and any(needle in str(p) for p in problems), f"Serve validation accepted: {case}"


def test_serve_config_must_be_yaml(crds):
    rs = rayservice("cpu")
    rs["spec"]["serveConfigV2"] = "applications: [unclosed"
    assert [p.validator for p in problems_of(rs, crds, validators={"serve"})] == ["serve"]
    rs["spec"].pop("serveConfigV2")
    assert any("serveConfigV2" in str(p) for p in problems_of(rs, crds, validators={"serve"}))


def test_app_args_validator_uses_the_builders_model(monkeypatch):
    """The plumbing: args are validated with the pydantic model build_app takes; errors are named."""
    from pydantic import BaseModel, ConfigDict

    class Args(BaseModel):
        model_config = ConfigDict(extra="forbid")
        threshold: float

    monkeypatch.setattr(k8s, "args_model", lambda import_path: Args)
    config = {"applications": [{"name": "a", "import_path": "deployments.app:build_app", "args": {"threshold": 0.5}}]}
    assert k8s.validate_serve_config(config, "t") == []
    config["applications"][0]["args"] = {"threshold": "high", "treshold": 1}
    problems = k8s.validate_serve_config(config, "t")
    assert {p.validator for p in problems} == {"app-args"}
    assert any("threshold" in p.path for p in problems) and any("treshold" in p.path for p in problems)
    config["applications"][0]["args"] = {}
    assert any("threshold" in p.path and "required" in p.message for p in k8s.validate_serve_config(config, "t"))


def test_app_args_validator_rejects_with_the_real_app_args(crds):
    from deployments.config import AppArgs

    assert k8s.args_model("deployments.app:build_app") is AppArgs
    rs = rayservice("gpu")
    config = serve_of(rs)
    args = config["applications"][0]["args"]
    first = next(iter(args))
    args[first] = [["not", "a", "valid", "value"]]  # wrong type for any field
    set_serve(rs, config)
    problems = problems_of(rs, crds, validators={"app-args"})
    assert problems and any(first in p.path for p in problems), problems


def test_cross_checks_reject(crds):
    rs = rayservice("gpu")
    _head_container(rs)["resources"].pop("limits")
    assert any("resources.limits" in str(p) for p in problems_of(rs, crds, validators={"check"}))
    rs = rayservice("gpu")
    config = serve_of(rs)
    config.setdefault("http_options", {})["port"] = 9000
    set_serve(rs, config)
    assert any("9000" in str(p) for p in problems_of(rs, crds, validators={"check"}))
    config["http_options"]["host"] = "127.0.0.1"
    set_serve(rs, config)
    assert any("127.0.0.1" in str(p) for p in problems_of(rs, crds, validators={"check"}))


# --- what the GPU manifest must say (issue 6) --------------------------------------------------------


def _gpus(container) -> int:
    return int((container.get("resources") or {}).get("limits", {}).get("nvidia.com/gpu", 0))


def test_gpu_manifest_sizing():
    rs = rayservice("gpu")
    rc = rs["spec"]["rayClusterConfig"]
    assert rc["enableInTreeAutoscaling"] is True and rc["autoscalerOptions"]["version"] == "v2"
    assert rc["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    groups = {g["groupName"]: g for g in rc["workerGroupSpecs"]}
    gpu_groups = [g for g in groups.values() if _gpus(g["template"]["spec"]["containers"][0]) > 0]
    cpu_groups = [g for g in groups.values() if _gpus(g["template"]["spec"]["containers"][0]) == 0]
    assert gpu_groups and cpu_groups
    for g in groups.values():
        assert 0 <= g["minReplicas"] <= g["replicas"] <= g["maxReplicas"] and g["maxReplicas"] > g["minReplicas"]
    for c in containers(rs):
        res = c["resources"]
        assert res["requests"] and res["limits"], c["name"]
        assert res["requests"].get("nvidia.com/gpu") == res["limits"].get("nvidia.com/gpu")
    head_ports = {p["name"]: p["containerPort"] for p in _head_container(rs)["ports"]}
    assert head_ports["serve"] == 8000 and head_ports["metrics"] == 8080
    assert rs["spec"]["serveService"]["spec"]["ports"][0]["port"] == 8000

    opts = effective_deployments(serve_of(rs))
    assert {"Ingress", "WeakModel", "StrongModel"} <= set(opts) and any(n.startswith("Router_") for n in opts)
    gpu_of = {n: (o.get("ray_actor_options") or {}).get("num_gpus", 0) for n, o in opts.items()}
    routers = [n for n in opts if n.startswith("Router_")]
    assert all(0 < gpu_of[n] < 1 for n in routers), f"routers need fractional GPUs: {gpu_of}"
    # the static router has nothing to gain from a GPU: it is scored in the (CPU) ingress
    assert "Router_mf_static" not in opts and gpu_of["Ingress"] == 0
    assert gpu_of["WeakModel"] > 0, "the weak model (vLLM) needs a GPU"
    assert all("autoscaling_config" in opts[n] for n in [*routers, "WeakModel", "Ingress"])
    # what asks for GPUs at minimum replicas fits the GPU pods at minReplicas; the maximum fits at maxReplicas
    per_pod = max(_gpus(g["template"]["spec"]["containers"][0]) for g in gpu_groups)

    def need(bound: str) -> float:
        return sum(gpu_of[n] * (o.get("autoscaling_config") or {}).get(bound, o.get("num_replicas", 1)) for n, o in opts.items())

    assert need("min_replicas") <= per_pod * sum(g["minReplicas"] for g in gpu_groups) + 1e-9
    assert any(gpu_of[n] * 2 <= 1 for n in routers), "router replicas cannot share a GPU"


def effective_deployments(config: dict) -> dict[str, dict]:
    """Serve options per deployment name, as build_app + Serve's `deployments:` overrides give them."""
    from deployments.config import AppArgs

    (app,) = config["applications"]
    args = AppArgs.model_validate(app.get("args") or {})
    d = args.deployments
    out = {
        "Ingress": d.ingress.to_serve(),
        "WeakModel": d.weak_model.to_serve(),
        "StrongModel": d.strong_model.to_serve(),
        **{f"Router_{r.alias}": (r.deployment or d.router).to_serve() for r in args.routers
           if r.placement == "replica"},  # a router placed in the ingress has no deployment
    }
    for dep in app.get("deployments") or []:
        out[dep["name"]] = k8s.merge(out.get(dep["name"], {}), {k: v for k, v in dep.items() if k != "name"})
    return out


# --- Secrets: templates only, and every reference resolves ------------------------------------------

PLACEHOLDER = re.compile(r"^(<[^<>]+>)(,<[^<>]+>)*$")


def test_secret_templates_hold_no_values():
    secrets = k8s.load_documents(SECRETS)
    assert {s["kind"] for s in secrets} == {"Secret"}
    for s in secrets:
        assert "data" not in s, "base64 `data:` in a template: use stringData placeholders"
        for key, value in s["stringData"].items():
            assert PLACEHOLDER.match(value), f"{s['metadata']['name']}.{key} looks like a real value"


@pytest.mark.parametrize("profile", PROFILES)
def test_every_secret_reference_is_templated(profile):
    defined = {(s["metadata"]["name"], k) for s in k8s.load_documents(SECRETS) for k in s["stringData"]}
    refs = {
        (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for c in containers(rayservice(profile))
        for e in c.get("env") or []
        if "secretKeyRef" in (e.get("valueFrom") or {})
    }
    assert refs, "no Secret is referenced"
    assert refs <= defined, f"referenced but not in secrets.template.yaml: {refs - defined}"
    names = {e["name"] for c in containers(rayservice(profile)) for e in c.get("env") or []}
    assert {"OPENAI_API_KEY", "RAYROUTE_API_KEYS", "HF_TOKEN"} <= names


# --- the image: one Ray version everywhere ----------------------------------------------------------


def test_ray_version_is_pinned_consistently():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    (ray_pin,) = [d for d in pyproject["project"]["dependencies"] if d.startswith("ray[")]
    version = ray_pin.split("==")[1]
    dockerfile = (REPO / "Dockerfile").read_text()
    assert f"ARG RAY_VERSION={version}" in dockerfile
    assert re.search(r"^FROM rayproject/ray:\$\{RAY_VERSION\}-", dockerfile, re.M)
    assert '-e ".[gpu]"' in dockerfile and '-e ".[cpu]"' in dockerfile  # editable: app.py resolves paths
    for profile in PROFILES:
        rs = rayservice(profile)
        assert rs["spec"]["rayClusterConfig"]["rayVersion"] == version
        images = {c["image"] for c in containers(rs)}
        assert len(images) == 1 and next(iter(images)).endswith(f"-{profile}"), images
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".env"} <= set(ignored)


def test_the_image_copies_every_installed_package():
    """`pip install -e` in the image installs the packages pyproject names; each must be copied in,
    or the `rayroute` command the image runs fails to import."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = set(re.findall(r"^COPY \S+ (\w+) \./\1$", (REPO / "Dockerfile").read_text(), re.M))
    assert packages == {"routers", "deployments", "cli", "bench", "ops"}
    assert packages <= copied, sorted(packages - copied)
    assert not packages & set((REPO / ".dockerignore").read_text().split())
