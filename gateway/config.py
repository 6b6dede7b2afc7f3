"""Gateway configuration: every default in one place, loaded from TOML.

`GatewayConfig` is a plain dataclass so adding a field is one line. A TOML file may write keys at the
top level with their full field name (``signal_lost_after_s = 10800``) or group them in a table whose
name is the field prefix (``[mqtt] host = "..."`` sets ``mqtt_host``). ``[[sinks]]`` is an array of
tables, one per operator sink. Unknown keys are an error (a typo must not silently fall back to a
default that decides when customs are alarmed).
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOUR = 3600.0

# Sink kinds the drivers know (gateway/sinks.py; the pipeline only needs their names for the outbox).
SINK_KINDS = ("jsonl", "mqtt", "webhook")


class ConfigError(ValueError):
    """A configuration file or value that cannot be used; the message names the key."""


@dataclass
class SinkConfig:
    """One destination for operator events. Each sink has its own outbox rows and cursor."""

    name: str
    type: str  # one of SINK_KINDS
    path: str | None = None  # jsonl: file path, "-" for stdout
    url: str | None = None  # webhook: POST target
    topic: str | None = None  # mqtt: topic events are published on
    headers: dict[str, str] = field(default_factory=dict)  # webhook: extra headers
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("sink: 'name' is required")
        if self.type not in SINK_KINDS:
            raise ConfigError(f"sink {self.name!r}: type {self.type!r} not one of {SINK_KINDS}")
        if self.type == "jsonl" and not self.path:
            raise ConfigError(f"sink {self.name!r}: type jsonl needs 'path' (or '-' for stdout)")
        if self.type == "webhook" and not self.url:
            raise ConfigError(f"sink {self.name!r}: type webhook needs 'url'")
        if self.type == "mqtt" and not self.topic:
            raise ConfigError(f"sink {self.name!r}: type mqtt needs 'topic'")

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class SerialConfig:
    """One serial port carrying COBS-framed seal frames (a customs post reader, a bench)."""

    port: str
    baudrate: int = 115200


@dataclass
class GatewayConfig:
    # --- storage ---
    db_path: str = "navseal-gateway.sqlite3"
    # SQLite `synchronous` in WAL mode. FULL fsyncs the WAL at every commit: an ACK then really means
    # "survives power loss" (the seal frees its journal on it). NORMAL survives a process crash only.
    db_synchronous: str = "FULL"

    # --- rules (clause numbers of Order No. 407) ---
    signal_lost_after_s: float = 3 * HOUR  # clause 3.8: signal lost for more than 3 hours
    # After a (re)start, SIGNAL_LOST waits this long so the broker's backlog is ingested first.
    startup_grace_s: float = 120.0
    deactivation_deadline_s: float = 1 * HOUR  # clause 14: deactivate within one hour
    notify_deadline_s: float = 1 * HOUR  # clause 11: offices told within one hour (latency target)
    retention_years: int = 5  # clause 18.3: five years from the day after deactivation
    # Corridor hysteresis: ROUTE_DEVIATION when a fix is farther than the corridor half-width for
    # `route_confirm_fixes` fixes in a row; ROUTE_RETURNED only once a fix is back within
    # (corridor - route_hysteresis_m) (at most half the corridor). GNSS noise at the edge cannot flap.
    route_hysteresis_m: float = 50.0
    route_confirm_fixes: int = 2
    # Densify route segments longer than this before sending (the wire's i16 deltas reach ~36 km).
    route_max_segment_m: float = 30_000.0
    # Clause 10: ACTIVATED needs a fix taken after the seal was armed; allow this much clock slack.
    activation_fix_max_age_s: float = 300.0
    low_battery_pct: int = 20  # LOW_BATTERY below this (records' status byte or the seal's event)
    low_battery_clear_pct: int = 30  # re-armed once the battery is back above this

    # --- commands to seals ---
    # A seal counts as online (commands are sent to it) when it was heard within this window.
    online_window_s: float = 15 * 60.0
    command_retry_initial_s: float = 30.0
    command_retry_max_s: float = 15 * 60.0  # capped exponential backoff
    command_epoch: int = 0  # downlink `boot`: bump only if the command store is ever reset

    # --- logging of refused frames ---
    hex_excerpt_bytes: int = 48

    # --- ingest drivers ---
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_topic_prefix: str = "seals"  # seals/<id>/up and seals/<id>/down
    mqtt_client_id: str = "navseal-gateway"
    mqtt_share_group: str | None = None  # "$share/<group>/seals/+/up" when set
    mqtt_session_expiry_s: int = 7 * 24 * 3600
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    mqtt_keepalive_s: int = 30
    mqtt_protocol: str = "5"  # "5", or "3.1.1" for brokers that speak only 3.1.1 (no shared subscriptions)
    serial: list[SerialConfig] = field(default_factory=list)  # [[serial]] port, baudrate

    # --- logs ---
    log_format: str = "json"  # "json" or "text"
    log_level: str = "INFO"

    # --- retention (clause 18.3) ---
    retention_purge_interval_s: float = 24 * HOUR
    # The "day" of deactivation is a calendar day in Kazakhstan time (UTC+5 everywhere since
    # 1 March 2024); the purge uses this fixed offset, so it never depends on the host's zone.
    retention_utc_offset_h: float = 5.0

    # --- operator side ---
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    sinks: list[SinkConfig] = field(default_factory=list)
    sink_retry_initial_s: float = 1.0
    sink_retry_max_s: float = 300.0

    def __post_init__(self) -> None:
        if self.db_synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ConfigError(f"db_synchronous {self.db_synchronous!r}: use NORMAL or FULL")
        for name in ("signal_lost_after_s", "deactivation_deadline_s", "online_window_s",
                     "command_retry_initial_s", "command_retry_max_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0")
        if self.retention_years < 1:
            raise ConfigError("retention_years must be >= 1")
        if self.route_confirm_fixes < 1:
            raise ConfigError("route_confirm_fixes must be >= 1")
        names = [s.name for s in self.sinks]
        if len(set(names)) != len(names):
            raise ConfigError(f"sink names must be unique: {names}")

    @property
    def sink_names(self) -> list[str]:
        return [s.name for s in self.sinks]


_FIELDS = {f.name: f for f in dataclasses.fields(GatewayConfig)}


def config_from_dict(data: dict[str, Any]) -> GatewayConfig:
    """Build a config from parsed TOML (tables flatten to `<table>_<key>`)."""
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key == "sinks":
            if not isinstance(value, list):
                raise ConfigError("'sinks' must be an array of tables ([[sinks]])")
            values["sinks"] = [_table(SinkConfig, "sinks", item) for item in value]
        elif key == "serial":
            if not isinstance(value, list):
                raise ConfigError("'serial' must be an array of tables ([[serial]])")
            values["serial"] = [_table(SerialConfig, "serial", item) for item in value]
        elif isinstance(value, dict) and key not in _FIELDS:
            for sub, subvalue in value.items():
                _put(values, f"{key}_{sub}", subvalue)
        else:
            _put(values, key, value)
    return GatewayConfig(**values)


def load_config(path: str | Path | None = None, **overrides: Any) -> GatewayConfig:
    """Load a TOML file (or only defaults when `path` is None), then apply keyword overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    config = config_from_dict(data)
    return dataclasses.replace(config, **overrides) if overrides else config


def _put(values: dict[str, Any], key: str, value: Any) -> None:
    if key not in _FIELDS:
        raise ConfigError(f"unknown configuration key {key!r}")
    values[key] = value


def _table(cls: type, what: str, item: Any) -> Any:
    if not isinstance(item, dict):
        raise ConfigError(f"each [[{what}]] entry must be a table")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(item) - known
    if unknown:
        raise ConfigError(f"[[{what}]] {item.get('name', item.get('port'))!r}: unknown keys {sorted(unknown)}")
    try:
        return cls(**item)
    except TypeError as exc:  # a required key missing
        raise ConfigError(f"[[{what}]]: {exc}") from None
