"""What deploy/ installs, read the way ``kubectl apply -k`` reads it, for the deploy tests.

No kustomize binary is packaged for Debian (``apt-cache policy kustomize`` finds none) and
``make test`` installs nothing else, so this module renders a kustomization itself: its
``resources`` (files and nested kustomizations), ``namespace`` and ``configMapGenerator``
(``files``, ``envs``, ``literals``; ``behavior: merge``). Any other field is refused rather than
ignored, so the rendering cannot silently differ from kustomize's; where kustomize or kubectl is
installed, a test compares the two renderings object by object. Generated ConfigMaps keep their
plain names here (kustomize appends a content hash and rewrites the references to it).

It also answers which CANARIST_* variables the code reads, from the code itself: the fields of
``canarist.settings.Settings`` (which extends the workers' settings, so it holds every setting),
and names the code spells out as constants (the Kubernetes platform's kubeconfig variable).
"""

from __future__ import annotations

import ast
import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from canarist.settings import SETTINGS_FILE_VARIABLE, Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
EXAMPLES = DEPLOY / "examples"
KUSTOMIZATION = "kustomization.yaml"
KNOWN_FIELDS = {"apiVersion", "kind", "namespace", "resources", "configMapGenerator"}
GENERATOR_FIELDS = {"name", "namespace", "behavior", "files", "envs", "literals"}
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
}
WORKLOADS = {"Deployment", "StatefulSet"}
ENV_NAME = re.compile(r"CANARIST_[A-Z0-9_]+")

Obj = dict[str, Any]


class KustomizationError(Exception):
    """A kustomization this loader cannot render as kustomize would."""


@dataclass
class Rendering:
    """The objects a kustomization produces and every file it read to produce them."""

    objects: list[Obj] = field(default_factory=list)
    files: set[Path] = field(default_factory=set)
    generated: set[str] = field(default_factory=set)  # names of generated ConfigMaps

    def find(self, kind: str, name: str, namespace: str | None = None) -> Obj:
        for obj in self.objects:
            meta = obj["metadata"]
            if (obj["kind"], meta["name"]) == (kind, name) and namespace in (
                None,
                meta.get("namespace"),
            ):
                return obj
        raise KeyError(f"no {kind} {namespace or '*'}/{name} in the rendering")

    def of_kind(self, *kinds: str) -> list[Obj]:
        return [obj for obj in self.objects if obj["kind"] in kinds]


def render(directory: Path) -> Rendering:
    """The objects of the kustomization in ``directory``, as ``kubectl kustomize`` builds them."""
    path = directory / KUSTOMIZATION
    spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    unknown = set(spec) - KNOWN_FIELDS
    if unknown:
        raise KustomizationError(f"{path}: fields this loader does not render: {sorted(unknown)}")
    result = Rendering(files={path})
    for entry in spec.get("resources") or []:
        target = (directory / entry).resolve()
        if target.is_dir():
            nested = render(target)
            result.objects += nested.objects
            result.files |= nested.files
            result.generated |= nested.generated
        elif target.is_file():
            result.files.add(target)
            result.objects += load_documents(target)
        else:
            raise KustomizationError(f"{path}: resource {entry!r} does not exist")
    for generator in spec.get("configMapGenerator") or []:
        _generate(directory, generator, result, path)
    namespace = spec.get("namespace")
    if namespace:
        for obj in result.objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = namespace
    return result


def load_documents(path: Path) -> list[Obj]:
    """The non-empty YAML documents of a manifest file."""
    with path.open(encoding="utf-8") as stream:
        return [document for document in yaml.safe_load_all(stream) if document]


def _generate(directory: Path, generator: Obj, result: Rendering, source: Path) -> None:
    unknown = set(generator) - GENERATOR_FIELDS
    if unknown:
        raise KustomizationError(f"{source}: configMapGenerator fields {sorted(unknown)}")
    data: dict[str, str] = {}
    for entry in generator.get("files") or []:
        key, _, name = entry.partition("=") if "=" in entry else ("", "", entry)
        file = (directory / name).resolve()
        if not file.is_relative_to(directory.resolve()):
            raise KustomizationError(f"{source}: {entry} is outside the kustomization (refused)")
        result.files.add(file)
        data[key or file.name] = file.read_text(encoding="utf-8")
    for entry in generator.get("envs") or []:
        file = (directory / entry).resolve()
        result.files.add(file)
        data.update(read_env_file(file))
    for literal in generator.get("literals") or []:
        key, _, value = literal.partition("=")
        data[key] = value
    name, behavior = generator["name"], generator.get("behavior", "create")
    if behavior == "merge":
        target = result.find("ConfigMap", name, generator.get("namespace"))
        target["data"].update(data)
        return
    if behavior != "create":
        raise KustomizationError(f"{source}: configMapGenerator behavior {behavior!r}")
    metadata: Obj = {"name": name}
    if "namespace" in generator:
        metadata["namespace"] = generator["namespace"]
    result.objects.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata})
    result.objects[-1]["data"] = data
    result.generated.add(name)


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as kustomize reads an ``envs`` file: blank and ``#`` lines skipped."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise KustomizationError(f"{path}:{number}: not KEY=VALUE")
        values[key.strip()] = value
    return values


def without_hash_suffixes(objects: list[Obj], generated: set[str]) -> list[Obj]:
    """Kustomize's output with ``<name>-<hash>`` of generated ConfigMaps back to ``<name>``."""
    pattern = re.compile(
        r"^(" + "|".join(re.escape(n) for n in sorted(generated)) + r")-[a-z0-9]{10}$"
    )

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: strip(item) for key, item in value.items()}
        if isinstance(value, list):
            return [strip(item) for item in value]
        if isinstance(value, str):
            return pattern.sub(r"\1", value)
        return value

    return [strip(copy.deepcopy(obj)) for obj in objects]


def kustomizations() -> list[Path]:
    """Every directory under deploy/ holding a kustomization."""
    return sorted(path.parent for path in DEPLOY.rglob(KUSTOMIZATION))


def deploy_files() -> list[Path]:
    return sorted(path for path in DEPLOY.rglob("*") if path.is_file())


def pod_specs(rendering: Rendering) -> Iterator[tuple[Obj, Obj]]:
    """(workload, its pod spec) for every Deployment and StatefulSet."""
    for workload in rendering.of_kind(*WORKLOADS):
        yield workload, workload["spec"]["template"]["spec"]


def container_env(rendering: Rendering, workload: Obj, container: Obj) -> dict[str, str]:
    """The variables a container starts with: envFrom ConfigMaps in order, then ``env`` (whose
    entries win, as in Kubernetes). Secret values are unknown here and left out."""
    namespace = workload["metadata"].get("namespace")
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        if "configMapRef" in source:
            config = rendering.find("ConfigMap", source["configMapRef"]["name"], namespace)
            env.update(config.get("data") or {})
    for variable in container.get("env") or []:
        if "value" in variable:
            env[variable["name"]] = variable["value"]
    return env


def variables_read_by_code() -> frozenset[str]:
    """Every CANARIST_* name the code reads: the settings' fields (nested with ``__``), the
    settings file variable, and the names written as constants."""
    prefix = Settings.model_config.get("env_prefix", "")
    delimiter = Settings.model_config.get("env_nested_delimiter") or "__"
    names = {SETTINGS_FILE_VARIABLE}
    for name, info in Settings.model_fields.items():
        top = f"{prefix}{name}".upper()
        names.add(top)
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names |= {f"{top}{delimiter}{sub}".upper() for sub in annotation.model_fields}
    return frozenset(names | _named_in_code())


def _named_in_code() -> set[str]:
    """CANARIST_* names written as string constants in canarist/ and workers/ (docstrings
    aside): variables read directly, like the Kubernetes platform's CANARIST_KUBECONFIG."""
    found: set[str] = set()
    for path in [*(ROOT / "canarist").rglob("*.py"), *(ROOT / "workers").rglob("*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        found |= {
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and id(node) not in docstrings
            and isinstance(node.value, str)
            and ENV_NAME.fullmatch(node.value)
        }
    return found


def check_httproute(route: Obj) -> list[str]:
    """Problems with a Gateway API HTTPRoute (no schema ships for CRDs): its identity and the
    fields the gateway_api router relies on (parentRefs, rules with backendRefs to Services)."""
    problems = []
    if route.get("apiVersion") != "gateway.networking.k8s.io/v1":
        problems.append(f"apiVersion {route.get('apiVersion')!r}: the router writes v1")
    metadata = route.get("metadata") or {}
    if not metadata.get("name") or not metadata.get("namespace"):
        problems.append("metadata needs a name and a namespace")
    spec = route.get("spec") or {}
    parents = spec.get("parentRefs") or []
    if not parents or not all(isinstance(p, dict) and p.get("name") for p in parents):
        problems.append("spec.parentRefs must name the Gateway(s) the route attaches to")
    rules = spec.get("rules") or []
    if not rules:
        problems.append("spec.rules is empty")
    for index, rule in enumerate(rules):
        for ref in rule.get("backendRefs") or []:
            if ref.get("kind", "Service") != "Service" or ref.get("group", "") != "":
                problems.append(f"rules[{index}]: backendRefs must be Services")
            if not ref.get("name") or not isinstance(ref.get("port"), int):
                problems.append(f"rules[{index}]: a backendRef needs a name and a numeric port")
    return problems
