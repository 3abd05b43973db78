"""The Dockerfile builds Canarist from files that exist and reach the build, and runs it as the
``canarist`` console script, as the user and with the image tag compose and deploy/ expect.

No Docker daemon is needed: instructions are parsed, COPY sources are checked against the
repository and .dockerignore, and what ``pip install .`` needs against pyproject.toml.
"""

from __future__ import annotations

import importlib
import json
import re
import tomllib

import pytest
import yaml

from tests.deploy.manifests import DEPLOY, ROOT, pod_specs, render, variables_read_by_code

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
VERSION = PYPROJECT["project"]["version"]


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    return [(ins.upper(), rest.strip()) for ins, _, rest in (s.partition(" ") for s in logical)]


DOCKERFILE = instructions((ROOT / "Dockerfile").read_text(encoding="utf-8"))


def ignored_by(patterns: list[str]) -> re.Pattern[str]:
    """A regex matching a context path that .dockerignore excludes (a directory's pattern
    excludes everything under it). Exceptions (``!``) are not used here, so are refused."""
    regexes = []
    for pattern in patterns:
        if pattern.startswith("!"):
            raise ValueError(f".dockerignore exception {pattern!r}: teach this matcher first")
        parts = re.split(r"(\*\*/?|\*|\?)", pattern.strip("/"))
        wild = {"**": ".*", "**/": "(?:.*/)?", "*": "[^/]*", "?": "[^/]"}
        regexes.append("".join(wild.get(part, re.escape(part)) for part in parts))
    return re.compile(r"^(?:" + "|".join(regexes) + r")(?:/.*)?$")


def dockerignore() -> re.Pattern[str]:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return ignored_by([line.strip() for line in lines if line.strip() and line[0] != "#"])


def copies() -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY."""
    found = []
    for instruction, rest in DOCKERFILE:
        if instruction == "COPY":
            assert not rest.startswith("--from"), "one stage: every COPY is from the context"
            *sources, destination = rest.split()
            found.append((sources, destination))
    return found


def values(name: str) -> list[str]:
    return [rest for instruction, rest in DOCKERFILE if instruction == name]


def env_values() -> dict[str, str]:
    pairs = " ".join(values("ENV"))
    return dict(re.findall(r"(\w+)=(\S+)", pairs))


def test_the_base_image_is_python_3_11_slim() -> None:
    assert values("FROM") == ["python:3.11-slim"]


def test_every_copy_source_exists_and_is_in_the_build_context() -> None:
    excluded = dockerignore()
    for sources, _ in copies():
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file"
            assert not excluded.match(source.rstrip("/")), f"COPY {source}: .dockerignore drops it"


def test_the_dockerignore_matcher_catches_an_excluded_copy() -> None:
    assert dockerignore().match("tests")
    assert dockerignore().match("canarist/__pycache__/x.pyc")
    assert not dockerignore().match("canarist/cli/__init__.py")
    with pytest.raises(ValueError, match="exception"):
        ignored_by(["!keep"])


def test_pip_install_has_everything_pyproject_names() -> None:
    copied = {source.rstrip("/") for sources, _ in copies() for source in sources}
    include = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*").rstrip(".") for pattern in include}
    needed = {"pyproject.toml", PYPROJECT["project"]["readme"], *packages}
    assert needed <= copied, f"missing from the image: {sorted(needed - copied)}"
    runs = values("RUN")
    install = next(i for i, run in enumerate(DOCKERFILE) if run[1].startswith("pip install ."))
    last_needed_copy = max(
        i for i, (ins, rest) in enumerate(DOCKERFILE)
        if ins == "COPY" and set(rest.split()[:-1]) & needed
    )  # fmt: skip
    assert any(run.startswith("pip install .") for run in runs)
    assert last_needed_copy < install, "pip install . runs after the sources are copied"


def test_the_entrypoint_is_the_canarist_console_script() -> None:
    assert [json.loads(e) for e in values("ENTRYPOINT")] == [["canarist"]]
    module, _, function = PYPROJECT["project"]["scripts"]["canarist"].partition(":")
    assert callable(getattr(importlib.import_module(module), function))


def test_it_runs_as_the_non_root_user_the_manifests_expect() -> None:
    (user,) = values("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0, "numeric, so runAsNonRoot can verify it"
    for _, pod in pod_specs(render(DEPLOY / "base")):
        if pod["containers"][0]["image"].startswith("canarist:"):
            context = pod["securityContext"]
            assert (context["runAsUser"], context["runAsGroup"]) == (int(uid), int(gid or uid))


def test_its_variables_are_read_and_the_policies_sit_where_they_are_mounted() -> None:
    env = {k: v for k, v in env_values().items() if k.startswith("CANARIST_")}
    assert set(env) <= variables_read_by_code()
    policies = [dest for sources, dest in copies() if sources == ["policies"]]
    assert policies == [env["CANARIST_POLICY_DIR"]]
    for _, pod in pod_specs(render(DEPLOY / "base")):
        for mount in pod["containers"][0].get("volumeMounts", []):
            if mount["name"] == "policies":
                assert mount["mountPath"] == env["CANARIST_POLICY_DIR"]


def test_the_image_tag_is_the_project_version_everywhere() -> None:
    image = f"canarist:{VERSION}"
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    built = {s["image"] for s in compose["services"].values() if "build" in s}
    assert built == {image}
    used = {
        pod["containers"][0]["image"]
        for _, pod in pod_specs(render(DEPLOY / "base"))
        if pod["containers"][0]["image"].startswith("canarist")
    }
    assert used == {image}


def test_pip_install_keeps_every_file_the_packages_hold() -> None:
    """``pip install .`` puts only Python modules in the image unless pyproject.toml declares
    package data: a template or stylesheet beside the code would be missing at run time."""
    include = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    declared = PYPROJECT["tool"]["setuptools"].get("package-data", {})
    data = [
        str(path.relative_to(ROOT))
        for package in {pattern.rstrip("*").rstrip(".") for pattern in include}
        for path in (ROOT / package).rglob("*")
        if path.is_file() and path.suffix not in {".py", ".pyc"} and "__pycache__" not in path.parts
    ]
    assert not data or declared, f"not installed by pip install .: {data}"
