"""Alerts: Telegram and/or a JSON webhook, with bounded timeouts, retries, and one alert per episode.

Episode state lives in Postgres (``monitor_alert_state``) so CronJob pods share it: a kind of alert
(``drift``, ``live_error``, ``launch_failed``, ``trainer_failed``) starts an episode on the first run that
sees it and ends on the first run that does not, or when its subject changes (another failed trainer
Job); an episode is alerted once, and never sooner than the cool-down after the previous alert of that
kind. A rollback is an event, alerted every time.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import httpx
import psycopg

from services.common.vocabulary import AlertKind

log = logging.getLogger(__name__)

ATTEMPTS = 3
BACKOFF_SECONDS = 0.5


@dataclass(frozen=True)
class Alert:
    kind: str  # the AlertKind values due, joined by ", "
    text: str
    payload: dict[str, Any] = field(default_factory=dict)


class Channel(Protocol):
    name: str

    def send(self, alert: Alert) -> None: ...


@dataclass
class WebhookChannel:
    """POST ``{"kind", "text", ...payload}`` as JSON to a URL; any 2xx is delivered."""

    url: str
    timeout: float
    name: str = "webhook"

    def send(self, alert: Alert) -> None:
        body = {"source": "housing-monitor", "kind": alert.kind, "text": alert.text, **alert.payload}
        httpx.post(self.url, json=body, timeout=self.timeout).raise_for_status()


@dataclass
class TelegramChannel:
    """Telegram Bot API ``sendMessage`` (the base URL is configurable so tests can stand in for it)."""

    api_url: str
    token: str
    chat_id: str
    timeout: float
    name: str = "telegram"

    def send(self, alert: Alert) -> None:
        url = f"{self.api_url.rstrip('/')}/bot{self.token}/sendMessage"
        response = httpx.post(url, json={"chat_id": self.chat_id, "text": alert.text}, timeout=self.timeout)
        response.raise_for_status()


def deliver(
    channels: list[Channel], alert: Alert, *, attempts: int = ATTEMPTS
) -> tuple[list[str], list[str]]:
    """Send to every channel, retrying each; (channels that took it, error messages). Never raises."""
    delivered: list[str] = []
    errors: list[str] = []
    for channel in channels:
        for attempt in range(1, attempts + 1):
            try:
                channel.send(alert)
            except httpx.HTTPError as error:  # timeouts, refused connections, 4xx/5xx
                # Never log the URL of a Telegram request: it holds the bot token.
                message = f"{channel.name}: {type(error).__name__}" + (
                    f" {error.response.status_code}" if isinstance(error, httpx.HTTPStatusError) else ""
                )
                log.warning("alert attempt %d/%d failed: %s", attempt, attempts, message)
                if attempt == attempts:
                    errors.append(message)
                else:
                    time.sleep(BACKOFF_SECONDS * attempt)
            else:
                delivered.append(channel.name)
                break
    return delivered, errors


@dataclass(frozen=True)
class EpisodeState:
    kind: AlertKind
    active: bool
    new_episode: bool
    episode_alerted: bool
    last_alert_at: datetime | None

    def due(self, now: datetime, cooldown: timedelta) -> bool:
        """An active episode not yet alerted, and the cool-down since the last alert over."""
        if not self.active or self.episode_alerted:
            return False
        return self.last_alert_at is None or now - self.last_alert_at >= cooldown


def observe(
    conn: psycopg.Connection, kind: AlertKind, active: bool, now: datetime, *, subject: str | None = None
) -> EpisodeState:
    """Record whether this run sees ``kind`` (about ``subject``); start or end its episode.

    The caller owns the transaction.
    """
    row = conn.execute(
        "SELECT active, episode_alerted, last_alert_at, subject FROM monitor_alert_state"
        " WHERE kind = %s FOR UPDATE",
        (kind,),
    ).fetchone()
    was_active, alerted, last_alert_at, was_about = (
        (bool(row[0]), bool(row[1]), row[2], row[3]) if row else (False, False, None, None)
    )
    new_episode = active and (not was_active or subject != was_about)
    if new_episode:
        alerted = False
    conn.execute(
        "INSERT INTO monitor_alert_state"
        " (kind, active, episode_started_at, episode_alerted, last_seen_at, subject)"
        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (kind) DO UPDATE SET active = EXCLUDED.active,"
        " episode_started_at = CASE WHEN %s THEN EXCLUDED.episode_started_at"
        "   ELSE monitor_alert_state.episode_started_at END,"
        " episode_alerted = EXCLUDED.episode_alerted,"
        " last_seen_at = CASE WHEN EXCLUDED.active THEN EXCLUDED.last_seen_at"
        "   ELSE monitor_alert_state.last_seen_at END,"
        " subject = EXCLUDED.subject",
        (kind, active, now if new_episode else None, alerted, now if active else None, subject, new_episode),
    )
    return EpisodeState(kind, active, new_episode, alerted, last_alert_at)


def mark_alerted(conn: psycopg.Connection, kind: AlertKind, now: datetime) -> None:
    conn.execute(
        "INSERT INTO monitor_alert_state (kind, active, episode_alerted, last_alert_at)"
        " VALUES (%s, true, true, %s)"
        " ON CONFLICT (kind) DO UPDATE SET episode_alerted = true, last_alert_at = EXCLUDED.last_alert_at",
        (kind, now),
    )
