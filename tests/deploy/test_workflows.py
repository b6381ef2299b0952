"""GitHub workflows: schema, actionlint, pinned actions, least privilege, timeouts, concurrency, and the
order CI -> images -> staging pull request -> promotion pull request.

GitHub and Argo CD cannot run here: the ordering is checked on the workflows' text and structure (the
triggers, `if:` conditions, `needs:` and the order of steps), and the `run:` scripts by actionlint and
shellcheck. ~3 s with actionlint.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from .helpers import CHART, REPO, helm_template, missing, run

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
NAMES = {"ci.yml", "images.yml", "promote.yml", "infra.yml", "retrain.yml", "e2e.yml"}


def load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def test_all_workflows_exist() -> None:
    assert {p.name for p in WORKFLOWS} == NAMES


def test_github_workflow_schema(tool: Callable[[str], str]) -> None:
    cmd = [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS)]
    proc = run(cmd)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint(tool: Callable[[str], str]) -> None:
    tool("shellcheck")  # actionlint runs shellcheck on every `run:` when it is on PATH
    proc = run([tool("actionlint"), *map(str, WORKFLOWS)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_pinned_by_sha_with_version_comment(path: Path) -> None:
    uses = re.findall(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$", path.read_text(), re.MULTILINE)
    assert uses
    for ref, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), f"{path.name}: {ref} is not pinned by SHA"
        assert re.fullmatch(r"\s+# v\d+(\.\d+)*\s*", comment), (
            f"{path.name}: {ref} lacks a `# vX.Y.Z` comment"
        )


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_least_privilege_timeouts_concurrency(path: Path) -> None:
    wf = load(path)
    assert wf["permissions"] == {"contents": "read"}, "read-only default"
    assert "concurrency" in wf
    for name, job in wf["jobs"].items():
        assert isinstance(job.get("timeout-minutes"), int), f"{name}: timeout-minutes"
        perms = job.get("permissions")
        assert isinstance(perms, dict), f"{name}: explicit job permissions"
        assert "write-all" not in str(perms)
        for step in job["steps"]:
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False, f"{name}: persist-credentials"


def test_ci_runs_make_lint_and_make_test() -> None:
    steps = [
        s.get("run", "")
        for job in load(REPO / ".github/workflows/ci.yml")["jobs"].values()
        for s in job["steps"]
    ]
    assert "make test" in steps and "make lint" in steps


def scripts(job: dict[str, Any]) -> str:
    return "\n".join(s.get("run", "") for s in job["steps"])


def step_index(job: dict[str, Any], needle: str) -> int:
    """Index of the one step whose `run:` or `uses:` holds needle."""
    found = [i for i, s in enumerate(job["steps"]) if needle in s.get("run", "") + s.get("uses", "")]
    assert len(found) == 1, f"expected one step with {needle!r}, got {found}"
    return found[0]


def test_images_only_after_a_successful_ci_run_of_the_same_commit() -> None:
    ci = load(REPO / ".github/workflows/ci.yml")
    assert "push" in ci[True] and ci[True]["push"]["branches"] == ["main"]
    path = REPO / ".github/workflows/images.yml"
    wf, text = load(path), path.read_text()
    # PyYAML reads the `on:` key as True.
    assert wf[True] == {
        "workflow_run": {"workflows": [ci["name"]], "types": ["completed"], "branches": ["main"]}
    }
    jobs = wf["jobs"]
    gate = jobs["changes"]["if"]
    assert "github.event.workflow_run.conclusion == 'success'" in gate
    assert "github.event.workflow_run.event == 'push'" in gate, "a pull request's ci run builds nothing"

    # Every other job runs after the gate: directly, or through a job that needs it.
    def after_gate(name: str) -> bool:
        needs = jobs[name].get("needs", [])
        needs = [needs] if isinstance(needs, str) else needs
        return name == "changes" or any(after_gate(n) for n in needs)

    assert all(after_gate(name) for name in jobs), {n: j.get("needs") for n, j in jobs.items()}
    # The tested commit, never github.sha (main's tip when the run starts, maybe a later commit).
    assert "${{ github.sha }}" not in text and ":latest" not in text
    for name, job in jobs.items():
        for step in job["steps"]:
            if str(step.get("uses", "")).startswith("actions/checkout@") and name != "bump-staging":
                assert step["with"]["ref"] == "${{ github.event.workflow_run.head_sha }}", name
    build = jobs["build"]
    assert build["permissions"] == {"contents": "read", "packages": "write"}
    assert set(build["strategy"]["matrix"]["service"]) == {"inference", "monitor", "trainer"}
    push = next(s for s in build["steps"] if str(s.get("uses", "")).startswith("docker/build-push-action@"))
    assert push["with"]["tags"].endswith(":${{ github.event.workflow_run.head_sha }}")
    assert "steps.push.outputs.digest" in yaml.safe_dump(build), "the build records each image's digest"


def test_the_staging_bump_is_a_pull_request_after_every_image() -> None:
    wf = load(REPO / ".github/workflows/images.yml")
    bump = wf["jobs"]["bump-staging"]
    assert set(bump["needs"]) == {"build", "mlflow"}, "staging names images only once all of them exist"
    assert bump["permissions"] == {"contents": "write", "pull-requests": "write"}
    assert all(
        j["permissions"].get("pull-requests") is None for n, j in wf["jobs"].items() if n != "bump-staging"
    )
    script = scripts(bump)
    assert "values-staging.yaml" in script and "values-prod.yaml" not in script
    assert 'branch="bump/staging-${SHA}"' in script and "gh pr create" in script
    assert step_index(bump, "values-staging.yaml") < step_index(bump, "gh pr create")


def test_the_staging_bump_does_not_start_another_bump() -> None:
    """A loop check: merging the bump changes only values-staging.yaml, so the `ci` run of that merge
    builds nothing and opens no bump (2nd, 10th run alike). The build waits for `changes`, whose diff
    against staging's commit covers the images' inputs and not the chart."""
    wf = load(REPO / ".github/workflows/images.yml")
    changes = wf["jobs"]["changes"]
    script = scripts(changes)
    diff = next(line for line in script.replace("\\\n", " ").splitlines() if "git diff --quiet" in line)
    inputs = diff.split(" -- ", 1)[1].split(";")[0].split()
    assert {"services", "pyproject.toml", "requirements/mlflow.txt", ".github/workflows/images.yml"} <= set(
        inputs
    )
    assert not any(i.startswith("charts") for i in inputs), inputs
    assert "values-staging.yaml" in script, "compared with the commit staging runs"
    for name in ("build", "mlflow"):
        assert wf["jobs"][name]["needs"] == "changes"
        assert wf["jobs"][name]["if"] == "needs.changes.outputs.build == 'true'"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_workflow_pushes_to_main(path: Path) -> None:
    """Branch protection refuses pushes to main: every push goes to a bump/ or promote/ branch."""
    text = path.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        if "git push" in line:
            target = line.split()[-1]
            assert re.fullmatch(r'"HEAD:refs/heads/\$\{branch\}"', target), line
            assert "main" not in target, line
    for branch in re.findall(r'branch="([^"]+)"', text):
        assert branch.startswith(("bump/", "promote/")), branch


def test_promote_checks_staging_then_opens_a_pull_request_pinning_digests() -> None:
    wf = load(REPO / ".github/workflows/promote.yml")
    assert set(wf[True]) == {"workflow_dispatch"}
    assert wf[True]["workflow_dispatch"]["inputs"]["revision"]["required"] is False
    job = wf["jobs"]["promote"]
    assert job["environment"] == "production"
    assert job["permissions"] == {"contents": "write", "pull-requests": "write", "packages": "read"}
    argocd = step_index(job, "/api/v1/applications/cali-housing-staging")
    argocd_script = job["steps"][argocd]["run"]
    assert "Synced" in argocd_script and "Healthy" in argocd_script and "exit 1" in argocd_script
    assert "ARGOCD_AUTH_TOKEN" in str(job["steps"][argocd]["env"])
    readyz, predict = step_index(job, "/readyz"), step_index(job, "/predict")
    digest = step_index(job, "imagetools inspect")
    pin = step_index(job, "values-prod.yaml")
    pr = step_index(job, "gh pr create")
    assert argocd < readyz == predict < digest < pin < pr, "health and smoke test before the pull request"
    assert "curl -fsS" in job["steps"][readyz]["run"], "a failed smoke test fails the step"
    # Prod gets each service's digest and the commit staging synced, never a tag it cannot resolve.
    pin_script = job["steps"][pin]["run"]
    for service in ("inference", "monitor", "trainer"):
        assert f".{service}.image.digest = strenv({service.upper()})" in pin_script
        assert job["steps"][pin]["env"][service.upper()] == f"${{{{ steps.digests.outputs.{service} }}}}"
    assert ".spec.source.targetRevision = strenv(REVISION)" in pin_script
    assert job["steps"][pin]["env"]["REVISION"] == "${{ steps.staging.outputs.revision }}"
    assert "sha256:[0-9a-f]{64}" in job["steps"][digest]["run"], "an unresolved digest fails the run"


def test_infra_applies_only_behind_an_environment() -> None:
    wf = load(REPO / ".github/workflows/infra.yml")
    assert wf["jobs"]["apply"]["environment"] == "production"
    assert "pull_request" in wf["jobs"]["plan"]["if"] and "push" in wf["jobs"]["plan"]["if"]
    assert "pull_request" not in wf["jobs"]["apply"]["if"]
    assert "github.ref == 'refs/heads/main'" in wf["jobs"]["apply"]["if"]
    # Every `run:` is bash -eo pipefail: a failing terraform in a pipeline fails its step.
    assert wf["defaults"]["run"]["shell"] == "bash"


def step_using(job: dict[str, Any], action: str) -> tuple[int, dict[str, Any]]:
    found = [(i, s) for i, s in enumerate(job["steps"]) if str(s.get("uses", "")).startswith(f"{action}@")]
    assert len(found) == 1, f"expected one {action} step, got {len(found)}"
    return found[0]


def terraform_commands(job: dict[str, Any]) -> list[tuple[int, list[str]]]:
    """(step index, argv) of every terraform command of a job's `run:` scripts."""
    commands = []
    for i, step in enumerate(job["steps"]):
        script = step.get("run", "").replace("\\\n", " ")  # join continued lines
        for line in script.splitlines():
            for part in re.split(r"\|\||&&|\||;", line):
                words = part.split()
                if words and words[0] == "terraform":
                    commands.append((i, words))
    return commands


def test_infra_applies_the_saved_plan_of_the_same_commit() -> None:
    wf = load(REPO / ".github/workflows/infra.yml")
    workdir = wf["env"]["WORKDIR"]
    plan, apply = wf["jobs"]["plan"], wf["jobs"]["apply"]

    # The plan job saves its plan, with the lock file it was made with, under this commit's name.
    plans = [argv for _, argv in terraform_commands(plan) if argv[1] == "plan"]
    assert len(plans) == 1 and "-out=tfplan" in plans[0], plans
    up_at, upload = step_using(plan, "actions/upload-artifact")
    assert up_at > max(i for i, argv in terraform_commands(plan) if argv[1] == "plan")
    artifact = upload["with"]["name"]
    assert "${{ github.sha }}" in artifact
    paths = {line.strip() for line in upload["with"]["path"].splitlines()}
    assert {f"${{{{ env.WORKDIR }}}}/{f}" for f in ("tfplan", ".terraform.lock.hcl")} <= paths
    assert upload["with"]["include-hidden-files"] is True, "the lock file is a hidden file"
    assert upload["with"]["if-no-files-found"] == "error"
    assert "push" in upload["if"], "a plan to apply comes from a push to main"

    # The apply job waits for that plan job, fetches that very artifact into the root module,
    # initialises with its lock file and applies the saved file: no plan, no -auto-approve.
    assert apply["needs"] == "plan" or "plan" in apply["needs"]
    assert "needs.plan.outputs.changes == 'true'" in apply["if"]
    assert plan["outputs"]["changes"] == "${{ steps.plan.outputs.changes }}"
    down_at, download = step_using(apply, "actions/download-artifact")
    assert download["with"]["name"] == artifact
    assert download["with"]["path"] in ("${{ env.WORKDIR }}", workdir)
    commands = terraform_commands(apply)
    assert [argv[1] for _, argv in commands] == ["init", "apply"], commands
    (init_at, init), (apply_at, apply_argv) = commands
    assert down_at < init_at < apply_at
    assert "-lockfile=readonly" in init
    assert apply_argv[-1] == "tfplan", "terraform apply must be given the saved plan file"
    assert not any(
        a.startswith(("-auto-approve", "-var", "-replace", "-target", "-destroy")) for a in apply_argv
    )
    apply_text = yaml.safe_dump(apply)
    assert "terraform plan" not in apply_text and "auto-approve" not in apply_text
    for step in apply["steps"][apply_at:]:
        assert "TF_VAR_" not in str(step.get("env", {})), "a saved plan carries its variables"


def test_retrain_is_manual_and_runs_the_trainer() -> None:
    wf = load(REPO / ".github/workflows/retrain.yml")
    assert set(wf[True]) == {"workflow_dispatch"}  # PyYAML reads the `on:` key as True
    runs = " ".join(s.get("run", "") for s in wf["jobs"]["train"]["steps"])
    assert "housing train" in runs


def test_the_e2e_secret_holds_every_key_the_chart_requires(rendered: dict[str, Any]) -> None:
    """The kind cluster's Secret must carry each non-optional key the pods reference, or they never start."""
    script = (REPO / ".github" / "workflows" / "e2e.yml").read_text()
    given = set(re.findall(r"--from-literal=([A-Z_]+)=", script))
    required: set[str] = set()
    for doc in rendered["default"].docs:
        text = yaml.safe_dump(doc)
        for ref in re.findall(r"secretKeyRef:\n(?:\s+\w+: .+\n)+", text):
            if "optional: true" not in ref:
                required.update(re.findall(r"key: ([A-Z_]+)", ref))
    assert required >= {"DATABASE_URL", "FEEDBACK_TOKEN"}
    assert required - given == set(), "create these keys in e2e.yml's Secret"


def test_the_changes_script_builds_once_per_change_of_the_images_inputs(tmp_path: Path) -> None:
    """images.yml's `changes` script, run by bash in a real git repository: a new service commit
    builds; the merged staging bump (2nd run) and ten commits that touch no image input (10th run)
    build nothing, so the bump never starts another; the next service change builds again. ~1 s."""
    script = scripts(load(REPO / ".github/workflows/images.yml")["jobs"]["changes"])
    values = tmp_path / "charts" / "cali-housing" / "values-staging.yaml"
    values.parent.mkdir(parents=True)
    (tmp_path / "services").mkdir()

    def git(*args: str) -> str:
        proc = run(["git", "-C", str(tmp_path), *args])
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    def commit(path: Path, text: str) -> str:
        path.write_text(text)
        git("add", "-A")
        git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", path.name)
        return git("rev-parse", "HEAD")

    def builds() -> bool:
        out = tmp_path / "github_output"
        out.write_text("")
        proc = run(
            ["bash", "-e", "-o", "pipefail", "-c", f"cd {tmp_path}\n{script}"],
            extra_env={"GITHUB_OUTPUT": str(out)},
        )
        assert proc.returncode == 0, proc.stderr
        (line,) = out.read_text().splitlines()
        return {"build=true": True, "build=false": False}[line]

    git("init", "-q")
    commit(values, 'image:\n  tag: "' + "0" * 40 + '"\n')
    first = commit(tmp_path / "services" / "app.py", "v1\n")
    assert builds(), "the placeholder names no commit: build"
    commit(values, f'image:\n  tag: "{first}"\n')
    assert not builds(), "the staging bump's merge builds nothing"
    for i in range(10):
        commit(tmp_path / "notes.md", f"{i}\n")
        assert not builds(), f"run {i + 3}: nothing the images are built from changed"
    commit(tmp_path / "services" / "app.py", "v2\n")
    assert builds(), "a service change builds"


def mikefarah_yq(tool: Callable[[str], str]) -> str:
    """The yq GitHub's runners carry (`bash ci/install-tools.sh` installs it); Debian's is another."""
    yq = tool("yq")
    if "mikefarah" not in run([yq, "--version"]).stdout:
        missing(f"{yq} is not mikefarah's yq: run `bash ci/install-tools.sh`")
    return yq


def test_the_promotion_pins_prod_to_digests_the_chart_renders(
    tool: Callable[[str], str], tmp_path: Path
) -> None:
    """promote.yml's pin step, run by bash with the real yq on copies of values-prod.yaml and the prod
    Application: every service pod prod renders pulls its digest, targetRevision is the commit, and a
    second promotion of the same commit changes nothing (the workflow then opens no pull request).
    ~1 s."""
    job = load(REPO / ".github/workflows/promote.yml")["jobs"]["promote"]
    pin = job["steps"][step_index(job, "values-prod.yaml")]
    values = tmp_path / "charts" / "cali-housing" / "values-prod.yaml"
    app = tmp_path / "argocd" / "apps" / "cali-housing-prod.yaml"
    for src, dst in (
        (CHART / "values-prod.yaml", values),
        (REPO / "argocd/apps/cali-housing-prod.yaml", app),
    ):
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)
    commit = "1234e56789abcdef0123456789abcdef01234567"  # YAML would read 1234e567... as a float unquoted
    digests = {s: f"sha256:{c * 64}" for s, c in (("INFERENCE", "1"), ("MONITOR", "2"), ("TRAINER", "3"))}
    env = {"REVISION": commit, "TAG": commit, **digests}
    assert set(pin["env"]) == set(env)
    bin_dir = str(Path(mikefarah_yq(tool)).parent)
    outputs = []
    for _ in range(2):
        proc = run(
            ["bash", "-e", "-o", "pipefail", "-c", f"cd {tmp_path}\nPATH={bin_dir}:$PATH\n{pin['run']}"],
            extra_env=env,
        )
        assert proc.returncode == 0, proc.stderr
        outputs.append((values.read_text(), app.read_text()))
    assert outputs[0] == outputs[1], "a second promotion of the same commit is a no-op"
    assert yaml.safe_load(app.read_text())["spec"]["source"]["targetRevision"] == commit
    kept = yaml.safe_load((CHART / "values-prod.yaml").read_text())
    pinned = yaml.safe_load(values.read_text())
    assert pinned["image"]["tag"] == commit
    assert {k: v for k, v in pinned.items() if k not in ("image", "inference", "monitor", "trainer")} == {
        k: v for k, v in kept.items() if k not in ("image", "inference", "monitor", "trainer")
    }
    proc = helm_template(tool("helm"), ["-f", str(values)], namespace="cali-housing-prod")
    assert proc.returncode == 0, proc.stderr
    images = set(re.findall(r"image: (\S*/cali-housing-(?:inference|monitor|trainer)\S*)", proc.stdout))
    assert images == {f"ghcr.io/cali-housing/cali-housing-{s.lower()}@{d}" for s, d in digests.items()}, (
        images
    )
