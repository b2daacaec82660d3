"""The derived-image recipe (``examples/derived-image``): lint, rules, and the README's copy.

``make image-check`` builds and runs it (replayed on the base image's environment); these
checks are the fast part: hadolint, the image rules a derived image must keep, the base tag
being this release, and the README showing the recipe as it is.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

from tests.service.test_deploy import stages, tool

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "examples" / "derived-image"


def instructions() -> list[str]:
    [stage] = stages((RECIPE / "Dockerfile").read_text(encoding="utf-8"))
    return stage


def test_the_recipe_passes_hadolint() -> None:
    result = subprocess.run(
        [tool("hadolint"), "--no-color", str(RECIPE / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_recipe_builds_on_this_release_and_keeps_the_image_rules() -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    steps = instructions()
    assert steps[0] == f"FROM callbridge:{version}"
    users = [step.split()[1] for step in steps if step.startswith("USER")]
    assert users[-1] == "10001:10001", "the image runs unprivileged, as the base does"
    assert not any(step.startswith(("ENTRYPOINT", "CMD", "HEALTHCHECK")) for step in steps), (
        "entrypoint, command and health check are the base image's"
    )
    assert "COPY tenant.toml /etc/callbridge/tenant.toml" in steps
    for step in steps:
        if step.startswith("COPY"):
            source = step.split()[1]
            assert (RECIPE / source).exists(), f"{source} is not in the recipe's folder"


def test_the_readme_shows_the_recipe_as_it_is() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    [shown] = re.findall(r"```dockerfile\n(.*?)```", readme, re.DOTALL)
    [from_readme] = stages(shown)
    assert from_readme == instructions()
