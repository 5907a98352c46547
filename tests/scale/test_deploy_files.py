"""compose.yaml against the Compose specification, the Dockerfile against lint rules.

No Docker engine runs here. compose.yaml is interpolated the way Compose does it (the
variables from .env.example) and parsed by ``compose-spec`` (typed bindings of the
Compose specification: unknown keys, bad durations and unknown ``depends_on``
conditions are refused); then the rules a ``docker compose up --scale worker=N``
deployment needs are checked. The Dockerfile is parsed by ``dockerfile-parse`` and
checked against the hadolint rules named below.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from compose_spec import PyCompose
from dockerfile_parse import DockerfileParser

REPO = Path(__file__).resolve().parents[2]
INFRA = {"postgres", "rabbitmq", "minio"}

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?])?(?P<arg>[^}]*)\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(text: str, variables: dict[str, str]) -> str:
    """Compose's interpolation: ``$$``, ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}``."""

    def replace(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("braced") or match.group("named")
        value = variables.get(name)
        op, arg = match.group("op"), match.group("arg") or ""
        if op in (":-", "-"):
            return value if value else arg
        if op in (":?", "?") and not value:
            raise ValueError(f"required variable {name} is missing: {arg}")
        if value is None:
            raise ValueError(f"variable {name} is not set")
        return value

    return _VARIABLE.sub(replace, text)


def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


def documented_variables() -> set[str]:
    text = (REPO / ".env.example").read_text()
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose(interpolate((REPO / "compose.yaml").read_text(), env_example()))


def load_compose(text: str) -> dict[str, Any]:
    """YAML first (anchors and ``<<`` merges resolved, as Compose does), then the spec."""
    loaded: dict[str, Any] = yaml.safe_load(text)
    parsed = PyCompose.from_json(json.dumps(loaded))
    parsed.validate()
    return loaded


def test_compose_follows_the_specification_and_needs_every_variable_documented() -> None:
    raw = (REPO / "compose.yaml").read_text()
    used = {m.group("braced") for m in _VARIABLE.finditer(raw) if m.group("braced")}
    assert used - documented_variables() == set()
    with pytest.raises(ValueError, match="POSTGRES_PASSWORD"):
        interpolate(raw, {})
    bad = interpolate(raw, env_example()).replace("condition: service_healthy", "condition: up")
    with pytest.raises(ValueError, match="unknown variant `up`"):
        load_compose(bad)


def test_compose_runs_the_whole_topology_with_health_checks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert INFRA | {"hub", "worker"} <= set(services)
    for name, service in services.items():
        if name != "minio-setup":
            assert "healthcheck" in service, f"{name} has no health check"
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert condition["condition"] in {
                "service_healthy",
                "service_completed_successfully",
            }
    assert services["hub"]["command"][0] == "run"
    assert services["worker"]["command"][0] == "worker"
    for role in ("hub", "worker"):
        environment = services[role]["environment"]
        assert environment["STEMHUB_BROKER_URL"].startswith("amqp://")
        assert environment["STEMHUB_DATABASE_URL"].startswith("postgresql://")
        assert environment["STEMHUB_OBJECT_STORE_URL"].startswith("s3://")


def test_workers_scale_and_data_lives_in_volumes(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    # `--scale worker=4` fails on a fixed name or a published host port
    assert "container_name" not in worker and "ports" not in worker
    declared = set(compose["volumes"])
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            assert source in declared, f"{name} mounts undeclared volume {source}"
    for name in INFRA:
        assert compose["services"][name].get("volumes"), f"{name} keeps no data"


def test_no_secret_is_written_into_compose_yaml() -> None:
    raw = (REPO / "compose.yaml").read_text()
    for secret in ("PASSWORD", "SECRET", "TOKEN", "SIGNING_KEY"):
        for line in raw.splitlines():
            if secret in line and ":" in line and "${" not in line and "$$" not in line:
                key, _, value = line.partition(":")
                assert not value.strip() or secret not in key, f"literal secret: {line}"


@pytest.fixture(scope="module")
def dockerfile() -> DockerfileParser:
    parser = DockerfileParser(path=str(REPO / "Dockerfile"))
    return parser


def _stages(parser: DockerfileParser) -> list[list[dict[str, Any]]]:
    stages: list[list[dict[str, Any]]] = []
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def test_the_dockerfile_is_multi_stage_non_root_and_parameterised(
    dockerfile: DockerfileParser,
) -> None:
    stages = _stages(dockerfile)
    assert len(stages) >= 3  # uv, builder, runtime
    runtime = stages[-1]
    users = [i["value"] for i in runtime if i["instruction"] == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    args = {line.split("=")[0] for line in re.findall(r"^ARG (\S+)", dockerfile.content, re.M)}
    assert {"EXTRAS", "RUNTIME_IMAGE", "BUILDER_IMAGE"} <= args
    assert "uv sync --frozen" in dockerfile.content and "--no-dev" in dockerfile.content
    assert any(i["instruction"] == "HEALTHCHECK" for i in runtime)


def test_the_dockerfile_passes_the_hadolint_rules_we_rely_on(
    dockerfile: DockerfileParser,
) -> None:
    for instruction in dockerfile.structure:
        kind, value = instruction["instruction"], instruction["value"]
        if kind == "FROM":
            image = value.split()[0]
            # DL3007: no `latest`; an ARG-named image is pinned where the ARG is set
            assert not image.endswith(":latest") and (":" in image or image.startswith("$"))
        if kind == "WORKDIR":
            assert value.startswith("/")  # DL3000
        if kind in ("CMD", "ENTRYPOINT"):
            assert value.startswith("[")  # DL3025: JSON form, signals reach the process
        if kind == "ADD":
            raise AssertionError("DL3020: use COPY")
        if kind == "RUN" and "apt-get install" in value:
            assert "--no-install-recommends" in value  # DL3015
            assert "rm -rf /var/lib/apt/lists/*" in value  # DL3009
            assert " -y " in value  # DL3014
        if kind == "RUN" and "pip install" in value:
            assert "--no-cache-dir" in value  # DL3042
    for name, value in re.findall(r"^ARG (\w+_IMAGE)=(\S+)", dockerfile.content, re.M):
        assert ":" in value and not value.endswith(":latest"), name
