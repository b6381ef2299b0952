"""Trainer commands: ``housing train``, ``promote``, ``rollback``, ``models``, ``keys new``.

This module is the trainer's edge: it reads settings once and wires the real parts. Heavy imports
(MLflow, scikit-learn) happen inside the commands so ``housing --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from services.trainer.settings import TrainerSettings

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

console = Console(stderr=True)


def train(
    no_promote: Annotated[bool, typer.Option("--no-promote", help="Stop at the challenger alias.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a machine-readable summary on stdout.")
    ] = False,
) -> None:
    """Train a candidate on the data set plus labelled production rows, register it, and gate it."""
    from services.common.connections import database_url, open_registry, tracking_uri
    from services.common.dataset import load_dataset
    from services.common.finite import dumps_summary
    from services.common.logs import configure as configure_logs
    from services.common.progress import Stages
    from services.trainer.train import run_training

    settings = TrainerSettings()
    configure_logs(settings.log_format)
    url = database_url(settings)
    client, experiment_id = open_registry(*tracking_uri(settings))
    stages = Stages(5 if no_promote else 6)
    with stages.stage("loading the California housing data set"):
        dataset = load_dataset()
    summary = run_training(
        client, experiment_id, url, dataset, settings, promote=not no_promote, stages=stages
    )
    if as_json:
        print(dumps_summary(summary.as_dict()))
        return
    metrics = summary.metrics
    console.print(
        f"version {summary.version}: holdout R² {_figure(metrics.get('holdout_r2'))}, "
        f"MAE {_figure(metrics.get('holdout_mae'))} "
        f"(100k USD) on {len(dataset.y_holdout)} rows"
    )
    if summary.gate is not None:
        _print_gate(summary.gate.decision.passed, summary.gate.decision.reasons, summary.version)


def _figure(value: float | None) -> str:
    """A figure for people: three decimals, or "undefined" (its reason is in the run's tags)."""
    return "undefined" if value is None else f"{value:.3f}"


def _print_gate(passed: bool, reasons: list[str], version: int) -> None:
    verdict = "[green]promoted to champion[/green]" if passed else "[red]rejected[/red]"
    console.print(f"gate: version {version} {verdict}")
    for reason in reasons:
        console.print(f"  - {reason}")


def promote(
    version: Annotated[int, typer.Argument(help="The model version to promote.")],
    force: Annotated[bool, typer.Option("--force", help="Skip the gate (needs --reason).")] = False,
    reason: Annotated[str | None, typer.Option("--reason", help="Why the gate is skipped.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the decision as JSON on stdout.")] = False,
) -> None:
    """Put a registered version through the gate and make it champion if it passes."""
    from services.common.connections import database_url, open_registry, tracking_uri
    from services.common.dataset import load_dataset
    from services.common.finite import dumps_summary
    from services.trainer.lifecycle import force_promote, gate_version

    if force and not (reason and reason.strip()):
        raise typer.BadParameter(
            "--force needs --reason TEXT saying why the gate is skipped", param_hint="--reason"
        )
    settings = TrainerSettings()
    url = database_url(settings)
    client, _ = open_registry(*tracking_uri(settings))
    if force:
        assert reason is not None
        old = force_promote(client, url, version, actor="housing promote --force", reason=reason)
        console.print(f"version {version} is champion (forced: {reason}); previous: {old}")
        return
    result = gate_version(client, url, load_dataset(), settings, version, actor="housing promote")
    if as_json:
        print(dumps_summary(result.as_dict()))
    _print_gate(result.decision.passed, result.decision.reasons, version)
    if not result.decision.passed:
        raise typer.Exit(1)


def rollback(
    reason: Annotated[
        str, typer.Option("--reason", help="Why the champion is rolled back.")
    ] = "manual rollback",
    to: Annotated[
        int | None,
        typer.Option(
            "--to",
            help="The version to restore (default: previous); e.g. the one before an episode of promotions.",
        ),
    ] = None,
) -> None:
    """Put the previous champion (or --to VERSION) back and record why."""
    from services.common.connections import database_url, open_registry, tracking_uri
    from services.common.rollback import roll_back

    settings = TrainerSettings()
    url = database_url(settings)
    client, _ = open_registry(*tracking_uri(settings))
    bad, good = roll_back(client, url, actor="housing rollback", reasons=[reason], to=to)
    console.print(f"rolled back: version {good} is champion again (version {bad} retired)")


def models(
    history: Annotated[
        bool, typer.Option("--history", help="Which version was champion when, and why.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the versions (figures, gate decision, evidence) as JSON.")
    ] = False,
) -> None:
    """List model versions with aliases, figures, gate outcome and its evidence (or the champion history)."""
    from services.common.connections import database_url, open_registry, tracking_uri
    from services.common.finite import dumps_summary

    settings = TrainerSettings()
    out = Console()
    if history:
        out.print(_history_table(database_url(settings)))
        return
    client, _ = open_registry(*tracking_uri(settings))
    listed = _listed_versions(client)
    if as_json:
        print(dumps_summary({"versions": listed}))
        return
    table = Table("version", "aliases", "holdout R²", "holdout MAE", "gate", "evidence", "created")
    for row in listed:
        table.add_row(
            # The signing key is in --json; an unsigned version is said here (every reader refuses it).
            str(row["version"]) + ("" if row["signed_by"] else " unsigned"),
            ", ".join(row["aliases"]),
            _figure(row["metrics"].get("holdout_r2")),
            _figure(row["metrics"].get("holdout_mae")),
            row["gate"] or "",
            "\n".join(_evidence_line(item) for item in row["evidence"].values()),
            row["created"],
        )
    out.print(table if listed else "no model versions yet: train one with `housing train`")


def _history_table(url: str) -> Table:
    """Which version was champion when, and why: the model events, oldest first."""
    from services.common.database import connect

    with connect(url) as conn:
        rows = conn.execute(
            "SELECT created_at, event, model_version, previous_version, actor, reasons FROM model_events"
            " ORDER BY created_at, id"
        ).fetchall()
    table = Table("time", "event", "version", "before", "by", "why")
    for at, event, version, before, actor, reasons in rows:
        table.add_row(
            f"{at:%Y-%m-%d %H:%M:%S}", event, str(version), str(before or ""), actor, "; ".join(reasons)
        )
    return table


def _listed_versions(client: MlflowClient) -> list[dict[str, Any]]:
    """Every model version, oldest first, with its aliases, figures, gate decision, evidence and signer."""
    from services.common.model_signing import TAG_KEY_ID
    from services.common.registry import MODEL_NAME, TAG_DECISION, current_aliases, version_figures

    aliases = current_aliases(client)
    by_version: dict[int, list[str]] = {}
    for alias, version in aliases.items():
        if version is not None:
            by_version.setdefault(version, []).append(alias)
    versions = sorted(client.search_model_versions(f"name='{MODEL_NAME}'"), key=lambda v: int(v.version))
    listed: list[dict[str, Any]] = []
    for mv in versions:
        figures = version_figures(client, mv)
        listed.append(
            {
                "version": int(mv.version),
                "aliases": by_version.get(int(mv.version), []),
                "metrics": figures.metrics,
                "gate": figures.tags.get(TAG_DECISION),
                "evidence": _evidence(figures.tags),
                # The key id the version claims (readers check the signature before loading it).
                "signed_by": figures.tags.get(TAG_KEY_ID),
                "created": _ms_to_text(mv.creation_timestamp),
            }
        )
    return listed


def _evidence(tags: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The gate's evidence a version was tagged with ({} for versions gated before it was recorded)."""
    import json

    from services.trainer.lifecycle import TAG_EVIDENCE

    try:
        evidence = json.loads(tags.get(TAG_EVIDENCE, "{}"))
    except json.JSONDecodeError:
        return {}
    return evidence if isinstance(evidence, dict) else {}


def _evidence_line(item: dict[str, Any]) -> str:
    """ "recent n=300: Δ -0.052 [-0.079, -0.024], margin 0.014, MDE 0.043 ✓" (candidate - champion MAE)."""
    try:
        return (
            f"{item['comparison']} n={item['rows']}: Δ {float(item['difference']):+.3f} "
            f"[{float(item['lower']):+.3f}, {float(item['upper']):+.3f}], "
            f"margin {float(item['margin']):.3f}, MDE {float(item['mde']):.3f} "
            f"{'✓' if item['passed'] else '✗'}"
        )
    except (KeyError, TypeError, ValueError):
        return "unreadable evidence"


def _ms_to_text(ms: int | None) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp((ms or 0) / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def keys_new(
    namespace: Annotated[str, typer.Option(help="The release's namespace.")] = "cali-housing-prod",
    secret: Annotated[str, typer.Option(help="The release's Secret (secrets.existingSecret).")] = (
        "cali-housing-secrets"
    ),
    environment: Annotated[
        str, typer.Option("--env", help="Which values-<env>.yaml trusts the key.")
    ] = "prod",
    out: Annotated[
        Path | None,
        typer.Option(help="Write the private key to this file (mode 0600) instead of printing it."),
    ] = None,
) -> None:
    """A fresh Ed25519 pair for signing model versions, and the lines that install it.

    The private key (MODEL_SIGNING_KEY) goes into the release Secret, read by the trainer Job only; the
    public key (MODEL_VERIFY_KEYS) into modelSigning.publicKeys, read by every service that loads models.
    """
    import os

    from services.common.model_signing import new_keypair

    pair = new_keypair()
    if out is not None:
        descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(pair.private)  # no newline: kubectl --from-file stores the file's bytes as they are
        private_line = f"written to {out} (mode 0600); delete it once it is in the Secret"
        source = f"--from-file=MODEL_SIGNING_KEY={out}"
        patch_value = f"$(base64 -w0 < {out})"
    else:
        private_line = pair.private
        source = f"--from-literal=MODEL_SIGNING_KEY='{pair.private}'"
        patch_value = f"$(printf %s '{pair.private}' | base64 -w0)"
    print(f"""key id:      {pair.key_id}
private key: {private_line}
public key:  {pair.public}

1. The private key into the release Secret (only the trainer Job reads it; never commit it).
   A new Secret, with the release's other keys (docs/day-one.md step 4):
     kubectl -n {namespace} create secret generic {secret} {source} --from-literal=...
   The Secret exists already:
     kubectl -n {namespace} patch secret {secret} --type merge \\
       -p "{{\\"data\\":{{\\"MODEL_SIGNING_KEY\\":\\"{patch_value}\\"}}}}"
   (an ExternalSecret: add MODEL_SIGNING_KEY to the store's entry instead.)

2. The public key into charts/cali-housing/values-{environment}.yaml (public: commit it). During a
   rotation keep the old key after the new one until no served version is signed by it:
     modelSigning:
       publicKeys: ["{pair.public}"]

3. Sync: the services read the keys at start; the trainer Job signs every version it registers from
   then on. A version registered before is refused: retrain, or vouch for one you trust with
   `housing keys sign VERSION` (MODEL_SIGNING_KEY and MLFLOW_TRACKING_URI set).""")


def keys_sign(
    versions: Annotated[list[int], typer.Argument(help="The versions to vouch for.")],
) -> None:
    """Sign registered versions as they are in the store now, with MODEL_SIGNING_KEY.

    For versions registered before signing existed, or by a trainer without the key: it vouches for
    whatever their files hold now, so sign only versions whose origin you know.
    """
    from services.common.connections import open_registry, tracking_uri
    from services.common.registry import get_version
    from services.common.signed_artifacts import sign_version
    from services.common.signing_keys import signer

    settings = TrainerSettings()
    version_signer = signer(settings, settings.model_signing_key)
    client, _ = open_registry(*tracking_uri(settings))
    for version in versions:
        get_version(client, version)  # RegistryError naming the known versions
        manifest = sign_version(client, version, version_signer)
        console.print(f"version {version}: {len(manifest)} files signed by key {version_signer.key_id}")
