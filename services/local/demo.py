"""``housing demo``: the closed loop on one machine, scripted, with a timeline and an HTML report.

Steps: a fresh state folder (``HOUSING_HOME/demo``) with an embedded Postgres and an MLflow store; train and
promote v1; ``housing serve`` as a child; steady traffic and a monitor run (no drift); a market shift
(mostly high-income districts, prices +25%) whose prices, like the steady traffic's, are not known yet
(house prices arrive months after a prediction): the monitor finds drift, alerts a local webhook
receiver and waits for labels ("k of N": a retrain needs RETRAIN_MIN_NEW_LABELS labelled rows newer
than v1's); a second run with nothing new launches nothing and alerts no more; the prices arrive, the
realized MAE is set beside the label-free estimate, and the next run launches the trainer; the gate
promotes v2 with its evidence (rows, the MAE difference and its 95 % bounds) and the server swaps it in
under traffic, with no failed request; live error falls; a deliberately bad model forced in (what
``housing promote V --force`` does), rolled back by the next monitor run, and v2 serves again. Every child
process, the trainer the monitor launched and the embedded Postgres are stopped at the end, also on Ctrl-C
(SIGINT) or SIGTERM.

No monitor run is made between v2's promotion and the bad model: v2's reference profile is its training set
(mostly the base data), so the still-shifted traffic would be called drift again.

The knobs that make the loop fit in minutes (DRIFT_MIN_ROWS, ROLLBACK_MIN_ROWS, ROLLBACK_COOLDOWN_LABELS,
GATE_MIN_RECENT_ROWS and with it RETRAIN_MIN_NEW_LABELS, MODEL_POLL_SECONDS) are set here as the children's
environment, so the defaults in code stay production-like.
"""

from __future__ import annotations

import math
import secrets
import shutil
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from services.common.connections import stop_embedded_postgres
from services.common.vocabulary import Action, ModelEvent, Plan, RunStatus
from services.local.alert_receiver import AlertReceiver
from services.local.console import DemoConsole, usd
from services.local.evidence import describe_evidence
from services.local.processes import ChildFailed, Children, wait_for
from services.local.report import DemoRecord, ErrorPoint, MonitorRun, build_report
from services.local.scenarios import ScenarioSpec, scenario_spec, scenario_traffic
from services.local.simulator import SimulationSummary
from services.local.stack import Stack, StackError, reset_home
from services.local.timeline import Kind, Timeline, clock

GOAL_SECONDS = 300


@dataclass(frozen=True)
class Knobs:
    """Traffic sizes and the loop's thresholds for a run measured in minutes, not days."""

    rate: float = 400.0
    feedback_delay: float = 0.5
    # Evidently's per-column tests call drift on ~500 same-distribution rows now and then (Wasserstein
    # distances on a small window): steady windows get a thousand rows. The drift window holds the steady
    # rows too (it starts at the champion's promotion), so the shift outnumbers them: MedInc PSI ~0.45.
    steady_rows: int = 1000
    shift_rows: int = 1500
    shift_price_factor: float = 1.25
    background_rate: float = 40.0
    after_swap_rows: int = 400
    bad_rows: int = 1000
    drift_min_rows: int = 300
    rollback_min_rows: int = 150
    # The closed-loop test launches on the estimate right after the rollback, before any new label: the
    # loop runs without the cool-down (production waits for 1,000 new labels; test_monitor_run shows it).
    rollback_cooldown_labels: int = 0
    gate_min_recent_rows: int = 100
    recent_holdout_fraction: float = 0.3  # TRAIN_RECENT_HOLDOUT_FRACTION's default
    model_poll_seconds: float = 1.0
    seed: int = 7
    retrain_timeout: float = 240.0

    @property
    def new_labels_needed(self) -> int:
        """RETRAIN_MIN_NEW_LABELS as the gate needs it: ceil(GATE_MIN_RECENT_ROWS / holdout fraction)."""
        return math.ceil(self.gate_min_recent_rows / self.recent_holdout_fraction)

    def env(self) -> dict[str, str]:
        """The children's settings that differ from the production defaults."""
        return {
            "DRIFT_MIN_ROWS": str(self.drift_min_rows),
            "ROLLBACK_MIN_ROWS": str(self.rollback_min_rows),
            "ROLLBACK_COOLDOWN_LABELS": str(self.rollback_cooldown_labels),
            "GATE_MIN_RECENT_ROWS": str(self.gate_min_recent_rows),
            "TRAIN_RECENT_HOLDOUT_FRACTION": str(self.recent_holdout_fraction),
            "RETRAIN_MIN_NEW_LABELS": str(self.new_labels_needed),
            "MODEL_POLL_SECONDS": str(self.model_poll_seconds),
            "TRAINER_LAUNCHER": "local",
            "OMP_NUM_THREADS": "1",
        }


class DemoFailed(RuntimeError):
    """A step of the demo did not happen as scripted."""


class Demo:
    """One scripted run; :meth:`run` returns the exit code after stopping every part it started."""

    def __init__(
        self, home: Path, output: Path, knobs: Knobs, console: Console, *, keep_postgres: bool = False
    ) -> None:
        self.home = home.resolve()
        self.keep_postgres = keep_postgres
        self.output = output
        self.knobs = knobs
        self.console = console
        self.timeline = Timeline()
        self.stack = Stack(
            self.home, Children(self.home / "logs"), AlertReceiver(), token=secrets.token_hex(16)
        )
        self.out = DemoConsole(console, self.timeline, self.stack.children.logs)
        self.runs: list[MonitorRun] = []
        self.misses: list[str] = []
        self.facts: dict[str, str] = {}
        self.gate: list[str] = []
        self._background: list[threading.Event] = []
        self._dataset: Any = None
        self._phase = 0

    # ----- the script --------------------------------------------------------------------------------

    def run(self) -> int:
        """Run the script, stop everything, print the timeline and write the report; the exit code."""
        code = 0
        errors: list[ErrorPoint] = []
        try:
            self._script()
        except KeyboardInterrupt:
            self.console.print("\n[yellow]interrupted: stopping everything the demo started[/yellow]")
            code = 130
        except (DemoFailed, ChildFailed) as error:
            self.console.print(f"[red]demo failed: {error}[/red] (logs: {self.stack.children.logs})")
            code = 1
        finally:
            try:
                if code != 130 and self.stack.database_url:
                    self._stop_background()
                    errors = self._error_points()
            finally:
                self._clean_up()
        if code == 130:
            return code
        self._finish(errors)
        if code == 0 and self.misses:
            self.console.print("[red]the loop did not show everything it should:[/red]")
            for miss in self.misses:
                self.console.print(f"  - {miss}")
            code = 1
        return code

    def _script(self) -> None:
        knobs = self.knobs
        self.out.rule("1. state, Postgres, MLflow store, v1")
        self._prepare()
        v1 = self._train_first()
        self.out.rule("2. serving")
        self._start_server(v1)

        self.out.rule("3. steady traffic (its prices are known months later: withheld for now)")
        steady = self._traffic("steady", scenario_spec("steady"), knobs.steady_rows, withhold=True)
        first = self._monitor("steady")
        self._expect(
            first.status == RunStatus.OK, f"steady traffic: monitor said {first.status}, expected ok"
        )

        self.out.rule("4. the market shifts: high-income districts, prices +25%, not known yet")
        shift = scenario_spec("covariate-shift", knobs.shift_price_factor)
        shift_started = datetime.now(UTC)
        shifted = self._traffic("shifted", shift, knobs.shift_rows, mark="market shift", withhold=True)
        drift = self._wait_for_labels(v1, [*steady.withheld, *shifted.withheld], shift_started)

        self.out.rule("5. retrain, gate, hot swap under traffic")
        v2 = self._retrain_and_swap(v1, shift) if drift.action == Action.TRAINER_LAUNCHED else None
        if v2 is not None:
            self._traffic("after the swap", shift, knobs.after_swap_rows)
            self._live_error_falls(v1, v2, shift_started)

        self.out.rule("6. a bad model forced in, rolled back by the monitor")
        self._bad_model_rolled_back(v2 or v1)

    # ----- steps -------------------------------------------------------------------------------------

    def _prepare(self) -> None:
        from services.common.connections import embedded_postgres_url, mlflow_store
        from services.common.database import migrate

        with self.out.status("a fresh state folder and an embedded Postgres"):
            reset_home(self.home)
            database_url = embedded_postgres_url(self.home / "postgres")
            migrate(database_url)
        self.stack.receiver.start()
        self.stack.configure(database_url, self.knobs.env())
        uri, _ = mlflow_store(self.home)
        self.out.event("setup", "state ready", f"Postgres in {self.home / 'postgres'}; MLflow store {uri}")
        self.console.print(f"state in {self.home}; alerts go to {self.stack.receiver.url}")

    def _train_first(self) -> int:
        from pydantic import SecretStr

        from services.common.connections import mlflow_store, open_registry
        from services.common.dataset import load_dataset
        from services.trainer.settings import TrainerSettings
        from services.trainer.train import run_training

        with self.out.status("training v1 on the California housing data set"), self.out.quiet("train-v1"):
            self._dataset = load_dataset()
            self._client, self._experiment_id = open_registry(*mlflow_store(self.home))
            summary = run_training(
                self._client,
                self._experiment_id,
                self.stack.database_url,
                self._dataset,
                # the band of v1's estimate in chunks of the demo's window, as the monitor judges it
                TrainerSettings(
                    housing_home=self.home,
                    drift_min_rows=self.knobs.drift_min_rows,
                    model_signing_key=SecretStr(self.stack.env["MODEL_SIGNING_KEY"]),
                    model_verify_keys=self.stack.env["MODEL_VERIFY_KEYS"],
                ),
                actor="housing demo",
            )
        if summary.gate is None or not summary.gate.decision.passed:
            raise DemoFailed(f"v{summary.version} did not pass the gate: {summary.gate}")
        mae = summary.metrics["holdout_mae"]
        self.facts["v1 holdout MAE"] = usd(mae)
        self.out.event("promotion", f"v{summary.version} trained and promoted", f"holdout MAE {usd(mae)}")
        return summary.version

    def _start_server(self, expected: int) -> None:
        with self.out.status(f"starting housing serve on {self.stack.url}"):
            version = self.stack.start_server()
        self._expect(version == expected, f"the server loaded v{version}, expected v{expected}")
        self.out.event("setup", f"serving v{version}", self.stack.url)

    def _traffic(
        self, label: str, spec: ScenarioSpec, rows: int, *, mark: str | None = None, withhold: bool = False
    ) -> SimulationSummary:
        bodies, prices = self._rows(spec, rows)
        progress = Progress(
            TextColumn(f"traffic: {label}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"), console=self.console, transient=True,
        )  # fmt: skip
        with progress:
            task = progress.add_task(label, total=rows, detail="")

            def show(summary: SimulationSummary) -> None:
                detail = f"failed {summary.failed}, feedback {summary.feedback_posted}"
                progress.update(task, completed=summary.sent + summary.failed, detail=detail)

            started = self.timeline.now()
            summary = self.stack.send(
                bodies,
                prices,
                rate=self.knobs.rate,
                feedback_delay=self.knobs.feedback_delay,
                on_progress=show,
                withhold=withhold,
            )
        self.stack.wait_logged()
        labels = "prices withheld" if withhold else f"feedback {summary.feedback_posted}"
        detail = f"{spec.describe()}; sent {summary.sent}, failed {summary.failed}, {labels}"
        self.out.event("traffic", f"{label} traffic: {rows} rows", detail, at=started, mark=mark)
        self._expect(summary.failed == 0, f"{label} traffic: {summary.failed} rows failed {summary.errors}")
        return summary

    def _monitor(self, label: str) -> MonitorRun:
        with self.out.status(f"housing monitor (after {label} traffic)"):
            try:
                report, finished = self.stack.monitor(timeout=240)
            except StackError as error:
                raise DemoFailed(str(error)) from error
        run = _monitor_run(report, label, self.timeline.now())
        self.runs.append(run)
        self.out.monitor_run(len(self.runs), run, finished.seconds)
        kind: Kind = "drift" if run.status == RunStatus.DRIFT else "monitor"
        mark = f"{run.status} → trainer" if run.action == Action.TRAINER_LAUNCHED else None
        detail = f"action {run.action}" + (f"; {run.detail}" if run.detail else "")
        self.out.event(kind, f"monitor #{len(self.runs)}: {run.status}", detail, mark=mark)
        if run.alerted:
            self.out.event(
                "alert", f"alert received ({self.stack.receiver.count()} in all)", "POST to the local webhook"
            )
        if run.action == Action.TRAINER_LAUNCHED:
            self.out.event("retrain", "trainer launched by the monitor", "housing train as a child process")
        return run

    def _retrain_and_swap(self, v1: int, shift: ScenarioSpec) -> int | None:
        """Keep shifted traffic flowing while the trainer runs; wait for the gate, then for the swap."""
        bodies, prices = self._rows(shift, int(self.knobs.background_rate * self.knobs.retrain_timeout * 1.5))
        with self._background_traffic(bodies, prices) as background:
            with self.out.status(
                "the trainer fits v2 on the base set plus labelled production rows, then the gate"
            ):
                decision = wait_for(
                    lambda: self.stack.observation.decision_after(v1),
                    timeout=self.knobs.retrain_timeout,
                    what="the trainer's gate",
                )
            event, version, reasons = decision.event, decision.version, decision.reasons
            at = self.timeline.since_start(decision.at)
            registered = self._since_start(self.stack.observation.registered_at(version))
            self.out.event(
                "model", f"v{version} registered", "trained on the base set plus labelled rows", at=registered
            )
            evidence = describe_evidence(decision.figures)
            shown = " | ".join(evidence) if evidence else "; ".join(reasons)
            self.gate += [f"v{version} {event}: {line}" for line in evidence or reasons]
            if event != ModelEvent.PROMOTED:
                self.misses.append(f"the gate rejected v{version}: {'; '.join(reasons)}")
                self.out.event("model", f"gate rejected v{version}", shown, at=at)
                return None
            self.out.event("promotion", f"gate promoted v{version}", shown, at=at)
            self.console.print(f"gate: [green]v{version} promoted[/green]")
            for line in evidence or reasons:
                self.console.print(f"  - {line}")
            with self.out.status(f"waiting for the server to swap in v{version} (it polls every "
                              f"{self.knobs.model_poll_seconds:g} s)"):  # fmt: skip
                wait_for(lambda: self.stack.served_version() == version or None, timeout=60, what="the swap")
            self.out.event("swap", f"server swapped to v{version}", "no restart", mark=f"v{version} serves")
            time.sleep(2.0)  # some traffic after the swap, served by the new model
        summary = background.summary
        served = ", ".join(f"v{v}: {n}" for v, n in sorted(summary.versions.items()))
        self.console.print(
            f"traffic during retrain and swap: {summary.sent} rows ({served}), "
            f"[{'green' if summary.failed == 0 else 'red'}]{summary.failed} failed[/]"
        )
        self.facts["failed requests during the swap"] = str(summary.failed)
        self._expect(summary.failed == 0, f"{summary.failed} rows failed during the swap: {summary.errors}")
        self._expect(
            set(summary.versions) == {v1, version}, f"the swap traffic saw versions {dict(summary.versions)}"
        )
        self.stack.wait_logged()
        return version

    def _live_error_falls(self, v1: int, v2: int, since: datetime) -> None:
        before = self.stack.observation.live_mae(v1, since)
        after = self.stack.observation.live_mae(v2, since)
        if before is None or after is None:
            self.misses.append("no labelled rows to compare live error before and after the swap")
            return
        self.facts[f"live MAE, shifted traffic, v{v1} → v{v2}"] = f"{usd(before)} → {usd(after)}"
        self.console.print(f"live MAE on the shifted traffic: v{v1} {usd(before)} → v{v2} {usd(after)}")
        self._expect(after < before, f"live error did not fall: v{v1} {usd(before)}, v{v2} {usd(after)}")

    def _bad_model_rolled_back(self, good: int) -> bool:
        """Force a bad model in and expect the monitor to roll it back; True when ``good`` serves again."""
        from services.common.model_signing import Signer
        from services.local.bad_model import REASON, register_bad_model
        from services.trainer.lifecycle import force_promote

        with (
            self.out.status("registering a model that prices every house at the mean"),
            self.out.quiet("bad-model"),
        ):
            bad = register_bad_model(
                self._client,
                self._experiment_id,
                self.stack.database_url,
                self._dataset,
                Signer.from_text(self.stack.env["MODEL_SIGNING_KEY"]),
            )
        # What `housing promote V --force --reason ...` does, without the 5-10 s of a new process's imports.
        with self.out.status(f"forcing it in: housing promote {bad} --force --reason 'demo: bad model'"):
            force_promote(
                self._client, self.stack.database_url, bad, actor="housing demo", reason="demo: bad model"
            )
        self.out.event("promotion", f"v{bad} forced in past the gate", REASON)
        with self.out.status(f"waiting for the server to swap in v{bad}"):
            wait_for(
                lambda: self.stack.served_version() == bad or None,
                timeout=60,
                what="the swap to the bad model",
            )
        self.out.event("swap", f"server swapped to v{bad}", "the bad model serves", mark=f"v{bad} forced in")
        self._traffic("steady, bad model", scenario_spec("steady"), self.knobs.bad_rows)
        run = self._monitor("bad model")
        self._expect(
            run.action == Action.ROLLED_BACK, f"bad model: monitor action {run.action}, expected rolled_back"
        )
        if run.action == Action.ROLLED_BACK:
            self.out.event(
                "rollback",
                f"monitor rolled back v{bad} → v{good}",
                f"live MAE {usd(run.live_mae)}",
                mark=f"rolled back → v{good}",
            )
            with self.out.status(f"waiting for the server to swap back to v{good}"):
                wait_for(
                    lambda: self.stack.served_version() == good or None, timeout=60, what="the swap back"
                )
            self.out.event("swap", f"server swapped back to v{good}", "")
        bad_mae = self.stack.observation.live_mae(bad, None)
        if bad_mae is not None:
            self.facts[f"live MAE of the bad v{bad}"] = usd(bad_mae)
        return run.action == Action.ROLLED_BACK

    def _wait_for_labels(self, v1: int, withheld: list[tuple[str, float]], since: datetime) -> MonitorRun:
        """Drift without prices: the monitor alerts and waits, twice; the prices arrive; then it launches."""
        needed = self.knobs.new_labels_needed
        waiting = self._monitor("shifted, no prices yet")
        self._expect(
            waiting.status == RunStatus.DRIFT,
            f"shifted traffic: monitor said {waiting.status}, expected drift",
        )
        self._expect(
            waiting.alerted and self.stack.receiver.count() >= 1,
            "no drift alert reached the webhook receiver",
        )
        self._expect(
            (waiting.plan, waiting.action) == (Plan.WAIT_FOR_LABELS, Action.NONE),
            f"drift without prices: plan {waiting.plan}, action {waiting.action}; expected to wait",
        )
        if waiting.plan == Plan.WAIT_FOR_LABELS:
            self.out.event(
                "drift",
                f"waiting for labels: {waiting.new_labels} of {needed}",
                "no trainer: a retrain would learn nothing v1 has not seen",
                mark=f"drift: {waiting.new_labels} of {needed} labels",
            )
        again = self._monitor("shifted, still no prices")
        self._expect(
            again.action == Action.NONE and not again.alerted,
            f"the 2nd run with nothing new: action {again.action}, alerted {again.alerted}; expected neither",
        )
        with self.out.status(f"the {len(withheld)} withheld prices arrive"):
            arrived = self.stack.post_labels(withheld)
        self.out.event(
            "traffic", f"{arrived.feedback_posted} withheld prices arrive", "", mark="prices arrive"
        )
        self._expect(arrived.feedback_failed == 0, f"{arrived.feedback_failed} withheld prices failed")
        realized = self.stack.observation.live_mae(v1, since)
        self.facts["v1 on the new market: MAE estimated before the prices / realized after"] = (
            f"{usd(waiting.estimated_mae)} / {usd(realized)}"
        )
        self.console.print(
            f"v1 on the shifted market: estimated MAE {usd(waiting.estimated_mae)} before any price, "
            f"realized {usd(realized)} once they arrived (v1's holdout MAE {usd(waiting.reference_mae)})"
        )
        launched = self._monitor("prices arrived")
        self._expect(
            launched.action == Action.TRAINER_LAUNCHED,
            f"prices arrived: action {launched.action} ({launched.detail}), not trainer_launched",
        )
        return launched

    # ----- observing the system ----------------------------------------------------------------------

    def _since_start(self, epoch: float | None) -> float | None:
        return self.timeline.since_start(epoch) if epoch is not None else None

    def _error_points(self) -> list[ErrorPoint]:
        return [
            ErrorPoint(self.timeline.since_start(sample.at), sample.version, sample.error)
            for sample in self.stack.observation.errors()
        ]

    # ----- plumbing ----------------------------------------------------------------------------------

    def _rows(self, spec: ScenarioSpec, rows: int) -> tuple[list[dict[str, float]], list[float]]:
        self._phase += 1
        rng = np.random.default_rng([self.knobs.seed, self._phase])
        return scenario_traffic(self._dataset.x_holdout, self._dataset.y_holdout, spec, rows, rng)

    @contextmanager
    def _background_traffic(
        self, bodies: list[dict[str, float]], prices: list[float]
    ) -> Iterator[_Background]:
        background = _Background()
        stop = threading.Event()
        self._background.append(stop)

        def send() -> None:
            background.summary = self.stack.send(
                bodies,
                prices,
                rate=self.knobs.background_rate,
                feedback_delay=self.knobs.feedback_delay,
                stop=stop,
            )

        thread = threading.Thread(target=send, name="background-traffic", daemon=True)
        thread.start()
        try:
            yield background
        finally:
            stop.set()
            thread.join(30)

    def _expect(self, condition: bool, miss: str) -> None:
        if not condition:
            self.misses.append(miss)
            self.console.print(f"[red]not as expected: {miss}[/red]")

    def _stop_background(self) -> None:
        for stop in self._background:
            stop.set()

    def _clean_up(self) -> None:
        self._stop_background()
        stopped = self.stack.children.stop_all()
        trainer = self.stack.stop_trainer()
        self.stack.receiver.stop()
        if stopped or trainer:
            self.console.print(f"stopped: {', '.join([*stopped, *trainer])}")
        if self.stack.database_url and self.keep_postgres:
            self.console.print(
                f"the embedded Postgres keeps running ({self.stack.database_url}); "
                f"stop it with: HOUSING_HOME={self.home} housing db stop"
            )
        elif self.stack.database_url and stop_embedded_postgres(self.home / "postgres"):
            self.console.print("stopped the embedded Postgres")

    # ----- the end -----------------------------------------------------------------------------------

    def _finish(self, errors: list[ErrorPoint]) -> Path | None:
        """Print the timeline and the total time; write the HTML report (None: nothing to show)."""
        total = self.timeline.now()
        self.out.timeline_table()
        self.facts = {
            "total time": clock(total),
            "alerts received": str(self.stack.receiver.count()),
            **self.facts,
        }
        path = None
        if self.runs or errors:
            path = self._write_report(total, errors)
        total = self.timeline.now()
        verdict = "within" if total < GOAL_SECONDS else "beyond"
        self.console.print(
            f"[bold]demo took {clock(total)} (m:ss)[/bold], {verdict} the {GOAL_SECONDS // 60}-minute goal"
            + (f"; report: {path}" if path else "")
        )
        return path

    def _write_report(self, total: float, errors: list[ErrorPoint]) -> Path:
        evidently = None
        drift_run = next(
            (run for run in self.runs if run.status == RunStatus.DRIFT and run.report_path), None
        )
        self.output.parent.mkdir(parents=True, exist_ok=True)
        if drift_run is not None and drift_run.report_path and Path(drift_run.report_path).exists():
            copy = self.output.with_name(self.output.stem + "-evidently.html")
            shutil.copyfile(drift_run.report_path, copy)
            evidently = copy.name
        record = DemoRecord(
            started=self.timeline.started,
            total_seconds=total,
            events=self.timeline.events,
            runs=self.runs,
            errors=errors,
            evidently_report=evidently,
            facts=self.facts,
            gate=self.gate,
        )
        self.output.write_text(build_report(record), encoding="utf-8")
        return self.output


@dataclass
class _Background:
    summary: SimulationSummary = field(default_factory=SimulationSummary)  # replaced by the sending thread


def _monitor_run(report: Mapping[str, Any], label: str, at: float) -> MonitorRun:
    """The parts of ``housing monitor --json`` the demo shows."""
    psi = report.get("psi") or {}
    labels = report.get("labels") or {}
    return MonitorRun(
        at=at,
        label=label,
        status=str(report.get("status", "?")),
        action=str(report.get("action", Action.NONE)),
        psi={str(k): float(v) for k, v in psi.items() if v is not None},
        drift_share=_float(report.get("drift_share")),
        live_mae=_float(report.get("live_mae")),
        reference_mae=_float(report.get("reference_mae")),
        estimated_mae=_float(report.get("estimated_mae")),
        triggers=tuple(str(trigger) for trigger in report.get("triggers") or ()),
        labelled_rows=int(report.get("labelled_rows") or 0),
        alerted=bool(report.get("alerted")),
        report_path=report.get("report_path"),
        plan=str(report.get("plan") or ""),
        detail=str(report.get("detail") or ""),
        new_labels=_int(labels.get("new")),
        needed_labels=_int(labels.get("needed")),
    )


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def run_demo(home: Path, output: Path, *, keep_postgres: bool = False, knobs: Knobs | None = None) -> int:
    """Run the scripted demo in ``home`` (wiped first), report to ``output``; returns the exit code."""
    import warnings

    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")  # platformdirs, on import of MLflow
    console = Console(highlight=False)
    demo = Demo(home, output, knobs or Knobs(), console, keep_postgres=keep_postgres)

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        code = demo.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return code
