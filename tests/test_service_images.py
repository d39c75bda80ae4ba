"""The lab services' images: one Dockerfile, a pinned base, a non-root user, tested versions.

No image can be built here (no Docker engine), so the checks read what a build would use: the
Dockerfile, each service's requirements, and the build arguments the plan gives each image.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from components.lab_workload import DOCKERFILE, SERVICES, source_tag
from lab.versions import PINS

ROOT = Path(__file__).resolve().parent.parent
SERVICE_FOLDERS = sorted(p.parent.name for p in SERVICES.glob("*/requirements.txt"))


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-r"):
            name, sep, version = line.partition("==")
            assert sep, f"{path}: {line!r} is not pinned with =="
            found[name.split("[")[0].lower()] = version
    return found


def test_the_dockerfile_builds_on_the_pinned_base_as_a_non_root_user():
    text = DOCKERFILE.read_text()
    assert re.findall(r"^FROM (\S+)$", text, re.MULTILINE) == [PINS.python_base.ref]
    assert re.findall(r"^USER (\S+)$", text, re.MULTILINE) == ["10001:10001"]
    assert re.findall(r"^ARG (\S+)$", text, re.MULTILINE) == ["SERVICE"]
    # The build refuses to run without its argument, before anything is copied.
    assert text.index('test -n "$SERVICE"') < text.index("COPY")


def test_every_service_has_pinned_requirements_equal_to_the_tested_versions():
    tested = pins(ROOT / "requirements-dev.txt") | pins(ROOT / "requirements.txt")
    assert len(SERVICE_FOLDERS) >= 7, SERVICE_FOLDERS
    for service in SERVICE_FOLDERS:
        runtime = pins(SERVICES / service / "requirements.txt")
        assert runtime, f"{service}: no requirements"
        assert {name: tested.get(name) for name in runtime} == runtime, service


def test_every_planned_image_builds_a_service_that_runs_as_a_module(dev_plan):
    images = dev_plan.of_type("docker:index/image:Image")
    assert len(images) >= 8
    for image in images:
        build = image["inputs"]["build"]
        assert build["dockerfile"] == "services/Dockerfile"
        assert build["context"] == "services"
        service = build["args"]["SERVICE"]
        assert service in SERVICE_FOLDERS, image["name"]
        # The image's default command: `python -m services.<SERVICE>`.
        assert importlib.util.find_spec(f"services.{service}.__main__") is not None, service


def test_the_tag_follows_the_sources(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "app.py").write_text("print(1)\n")
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM x\n")

    def tag() -> str:
        import components.lab_workload as workload

        saved = workload.SERVICES
        workload.SERVICES = tmp_path
        try:
            return source_tag(dockerfile, tmp_path / "a")
        finally:
            workload.SERVICES = saved

    first = tag()
    assert tag() == first
    (tmp_path / "a" / "app.py").write_text("print(2)\n")
    second = tag()
    assert second != first
    dockerfile.write_text("FROM y\n")
    assert tag() != second


def test_a_service_refuses_a_bad_port_before_it_serves(monkeypatch):
    from services.common.envconfig import ConfigError
    from services.common.web import env, serve

    monkeypatch.setenv("PORT", "80000")
    with pytest.raises(ConfigError, match=r"demo: PORT='80000': allowed: a whole number 1 to"):
        serve(None, "demo")  # type: ignore[arg-type]
    monkeypatch.delenv("IDP_ISSUER", raising=False)
    with pytest.raises(ConfigError, match="IDP_ISSUER is not set; set it"):
        env("IDP_ISSUER")
