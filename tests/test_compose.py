"""docker-compose.yml and the Dockerfile only run what exists and only set what is read.

No container engine runs here, so the files are parsed and each command is
checked against the project: management commands exist, the ASGI application
imports, every variable given to the app is one the project reads.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import get_commands

from tests.test_configuration import env_example_names, project_env_names, settings_env_names

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
APP_SERVICES = sorted(name for name, spec in SERVICES.items() if spec.get("build") == ".")
_INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)")
_MANAGE = re.compile(r"manage\.py\s+([a-z_]+)")


def words(command: Any) -> list[str]:
    return list(command) if isinstance(command, list) else shlex.split(command)


def commands_of(spec: dict[str, Any]) -> list[list[str]]:
    """The service's command, and its healthcheck's, as argument lists."""
    found = []
    if "command" in spec:
        found.append(words(spec["command"]))
    test = (spec.get("healthcheck") or {}).get("test")
    if test:
        args = words(test)
        found.append(args[1:] if args[0] in ("CMD", "CMD-SHELL") else args)
    return found


def management_commands(args: list[str]) -> list[str]:
    # `sh -c "python manage.py a && python manage.py b"` names several.
    return _MANAGE.findall(" ".join(args))


def asgi_apps(args: list[str]) -> list[str]:
    return [a for a in args if re.fullmatch(r"[\w.]+:\w+", a)] if "daphne" in args[:1] else []


def imports(app_path: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # In a child process: importing the ASGI module makes that process the
    # owner of the local vector index, which this test process must not become.
    module, _, name = app_path.partition(":")
    env = {**os.environ, "LIBRARIAN_TESTING": "1", "LIBRARIAN_DATA_DIR": str(tmp_path)}
    code = (
        f"import importlib; assert callable(getattr(importlib.import_module({module!r}), {name!r}))"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_it_runs_the_whole_stack():
    assert set(SERVICES) >= {
        "postgres",
        "redis",
        "qdrant",
        "minio",
        "minio-setup",
        "migrate",
        "web",
        "worker",
        "proxy",
    }
    assert APP_SERVICES == ["migrate", "web", "worker"]


@pytest.mark.parametrize("service", APP_SERVICES)
def test_it_runs_only_management_commands_that_exist(service):
    available = get_commands()
    named = [c for args in commands_of(SERVICES[service]) for c in management_commands(args)]
    assert named or service == "web"
    missing = [c for c in named if c not in available]
    assert not missing, f"{service} runs unknown management commands {missing}"


def test_it_serves_an_asgi_application_that_imports(tmp_path):
    web = SERVICES["web"]
    dockerfile_cmd = re.search(r"^CMD (\[.*\])$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert dockerfile_cmd is not None
    paths = set(asgi_apps(words(web["command"]))) | set(
        asgi_apps(yaml.safe_load(dockerfile_cmd.group(1)))
    )
    assert paths == {"librarian.asgi:application"}
    result = imports("librarian.asgi:application", tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("service", APP_SERVICES)
def test_it_sets_only_variables_the_project_reads(service):
    given = set(SERVICES[service].get("environment") or {})
    assert given, f"{service} sets no environment"
    unknown = given - project_env_names()
    assert not unknown, f"{service} sets variables nothing reads: {sorted(unknown)}"
    unlisted = given - env_example_names()
    assert not unlisted, f"{service} sets variables missing from .env.example: {sorted(unlisted)}"
    not_settings = (
        given - settings_env_names() - {"LIBRARIAN_ADMIN_USER", "LIBRARIAN_ADMIN_PASSWORD"}
    )
    assert not not_settings, f"{service} sets variables settings.py ignores: {sorted(not_settings)}"


def test_it_interpolates_only_documented_variables():
    from tests.test_configuration import documented_names

    settings_vars, compose_only = documented_names()
    used = set(_INTERPOLATION.findall((ROOT / "docker-compose.yml").read_text()))
    unknown = used - settings_vars - compose_only
    assert not unknown, f"document in docs/configuration.md: {sorted(unknown)}"
    assert compose_only <= used


def test_it_starts_services_only_after_what_they_need():
    for name, spec in SERVICES.items():
        needs = spec.get("depends_on") or {}
        assert set(needs) <= set(SERVICES), f"{name} depends on unknown services"
        for need, condition in needs.items():
            wanted = condition["condition"]
            if wanted == "service_healthy":
                assert "healthcheck" in SERVICES[need], f"{name} waits for {need}'s health"
    assert SERVICES["web"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert SERVICES["worker"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )


def test_it_checks_the_health_of_every_long_running_service():
    one_shot = {"migrate", "minio-setup"}
    for name, spec in SERVICES.items():
        if name not in one_shot:
            assert spec.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_it_keeps_data_in_declared_volumes():
    declared = set(COMPOSE["volumes"])
    for name, spec in SERVICES.items():
        for mount in spec.get("volumes") or []:
            source = mount.split(":", 1)[0]
            assert source in declared, f"{name} mounts undeclared volume {source}"
    assert {"pgdata", "redisdata", "qdrantdata", "miniodata", "appdata"} <= declared


def test_it_publishes_only_the_proxy_so_web_nodes_can_scale():
    published = [name for name, spec in SERVICES.items() if spec.get("ports")]
    assert published == ["proxy"]
    assert "container_name" not in SERVICES["web"] and "container_name" not in SERVICES["worker"]


def test_it_creates_the_bucket_the_app_uses():
    setup = SERVICES["minio-setup"]
    script = " ".join(words(setup["command"]))
    assert "mc mb --ignore-existing" in script
    app_bucket = SERVICES["web"]["environment"]["AWS_STORAGE_BUCKET_NAME"]
    assert setup["environment"]["BUCKET"] == app_bucket


def test_it_builds_an_image_that_runs_as_an_unprivileged_user():
    dockerfile = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER (\S+)$", dockerfile, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK ", dockerfile, re.MULTILINE)
