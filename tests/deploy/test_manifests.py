"""Every manifest under deploy/ is one Kubernetes accepts, and every file there is used.

Objects are validated against the Kubernetes OpenAPI schemas shipped inside the PyPI package
kubernetes-validate (offline), strictly (unknown fields are errors), for the oldest and the
newest Kubernetes version this suite supports. HTTPRoute is a CRD with no schema there: it is
checked for what the gateway_api router needs (manifests.check_httproute).
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy.manifests import (
    DEPLOY,
    EXAMPLES,
    ROOT,
    Rendering,
    check_httproute,
    deploy_files,
    kustomizations,
    load_documents,
    render,
    without_hash_suffixes,
)
from workers.intake import PolicyDir

KUBERNETES_VERSIONS = ("1.29", kubernetes_validate.utils.latest_version())
CUSTOM_CHECKS = {("gateway.networking.k8s.io/v1", "HTTPRoute"): check_httproute}
BASE = DEPLOY / "base"


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def schema_problems(obj: dict[str, Any], version: str) -> list[str]:
    """Why Kubernetes ``version`` would refuse ``obj`` (empty when it would not)."""
    custom = CUSTOM_CHECKS.get((str(obj.get("apiVersion")), str(obj.get("kind"))))
    if custom is not None:
        return custom(obj)
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(part) for part in exc.path) or "(top)"
        return [f"{where}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [f"no schema and no check for it: {exc.message}"]
    return []


def standalone_examples() -> list[Path]:
    """Manifests under deploy/examples that no kustomization reads (applied with -f)."""
    read = set().union(*(render(directory).files for directory in kustomizations()))
    return [
        path
        for path in sorted(EXAMPLES.rglob("*.yaml"))
        if path not in read and path.name != "kustomization.yaml"
    ]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("directory", kustomizations(), ids=relative)
def test_every_object_a_kustomization_renders_is_valid_kubernetes(
    directory: Path, version: str
) -> None:
    rendering = render(directory)
    assert rendering.objects, f"{relative(directory)} renders nothing"
    problems = [
        f"{obj['kind']} {obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}: {p}"
        for obj in rendering.objects
        for p in schema_problems(obj, version)
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_standalone_example_manifests_are_valid_kubernetes(version: str) -> None:
    examples = standalone_examples()
    assert examples, "the example Secret is missing"
    for path in examples:
        for obj in load_documents(path):
            assert not schema_problems(obj, version), relative(path)


def test_the_validation_catches_what_kubernetes_would_refuse() -> None:
    """The checks above can fail: a misspelt field, a wrong type and a bad route are caught."""
    api = render(BASE).find("Deployment", "canarist-api")
    misspelt = copy.deepcopy(api)
    misspelt["spec"]["replica"] = misspelt["spec"].pop("replicas")
    wrong_type = copy.deepcopy(api)
    wrong_type["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "8000"
    assert schema_problems(misspelt, KUBERNETES_VERSIONS[-1])
    assert schema_problems(wrong_type, KUBERNETES_VERSIONS[-1])
    route = render(EXAMPLES / "checkout").find("HTTPRoute", "checkout")
    orphan = copy.deepcopy(route)
    del orphan["spec"]["parentRefs"]
    assert check_httproute(route) == []
    assert check_httproute(orphan)
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert schema_problems(unknown, KUBERNETES_VERSIONS[-1])


def kustomize_command() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


@pytest.mark.parametrize("directory", kustomizations(), ids=relative)
def test_the_loader_renders_exactly_what_kustomize_renders(directory: Path) -> None:
    command = kustomize_command()
    if command is None:
        pytest.skip("neither kustomize nor kubectl is installed (Debian packages neither)")
    output = subprocess.run(
        [*command, str(directory)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    ours = render(directory)
    theirs = without_hash_suffixes([d for d in yaml.safe_load_all(output) if d], ours.generated)

    def key(obj: dict[str, Any]) -> tuple[str, str, str]:
        meta = obj["metadata"]
        return obj["kind"], meta.get("namespace", ""), meta["name"]

    assert sorted(ours.objects, key=key) == sorted(theirs, key=key)


def test_every_file_under_deploy_is_rendered_mounted_or_an_example() -> None:
    used = set().union(*(render(directory).files for directory in kustomizations()))
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    mounted = {
        (ROOT / volume.split(":")[0]).resolve()
        for service in compose["services"].values()
        for volume in service.get("volumes") or []
        if volume.startswith("./")
    }
    unused = [
        relative(path)
        for path in deploy_files()
        if path not in used | mounted
        and not path.is_relative_to(EXAMPLES)
        and path != DEPLOY / "README.md"
    ]
    assert not unused, f"files nothing reads: {unused}"


def test_the_policies_in_the_base_are_the_repository_policies() -> None:
    """kustomize reads no file outside deploy/base, so it holds a copy: never a stale one."""
    shipped = {path.name: path.read_bytes() for path in (ROOT / "policies").glob("*.yaml")}
    copied = {path.name: path.read_bytes() for path in (BASE / "policies").glob("*.yaml")}
    refresh = "cp policies/*.yaml deploy/base/policies/, listed in deploy/base/kustomization.yaml"
    assert copied.keys() == shipped.keys(), refresh
    stale = sorted(name for name in shipped if copied[name] != shipped[name])
    assert not stale, f"{stale} differ: {refresh}"
    generated = render(BASE).find("ConfigMap", "canarist-policies")
    assert set(generated["data"]) == set(shipped), refresh


@pytest.mark.parametrize("directory", kustomizations(), ids=relative)
def test_every_policy_loads_from_the_mounted_configmap(directory: Path, tmp_path: Path) -> None:
    """The ConfigMap as Kubernetes mounts it (one file per key) is a policy directory the
    workers load every policy from, each under its own name."""
    policies = render(directory).find("ConfigMap", "canarist-policies", "canarist")
    for key, text in policies["data"].items():
        (tmp_path / key).write_text(text, encoding="utf-8")
    directory_of_policies = PolicyDir(tmp_path)
    for key in policies["data"]:
        assert directory_of_policies.load(Path(key).stem).name == Path(key).stem


def test_every_workload_mounts_configmaps_the_rendering_holds() -> None:
    for directory in kustomizations():
        rendering: Rendering = render(directory)
        for workload in rendering.of_kind("Deployment", "StatefulSet"):
            namespace = workload["metadata"]["namespace"]
            pod = workload["spec"]["template"]["spec"]
            names = [v["configMap"]["name"] for v in pod.get("volumes") or [] if "configMap" in v]
            names += [
                source["configMapRef"]["name"]
                for container in pod["containers"]
                for source in container.get("envFrom") or []
                if "configMapRef" in source
            ]
            for name in names:
                rendering.find("ConfigMap", name, namespace)  # raises when missing
