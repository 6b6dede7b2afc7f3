"""Gateway configuration: every default in one place, typed and checked, loaded from TOML.

`GatewayConfig` is a pydantic dataclass: each field has a type and, where it matters, a range, and
a value of the wrong type is refused rather than coerced (`[mqtt] port = "abc"`, `signal_lost_after_s
= "3h"`, `true` for a number). A TOML file may write keys at the top level with their full field
name (``signal_lost_after_s = 10800``) or group them in a table whose name is the field prefix
(``[mqtt] host = "..."`` sets ``mqtt_host``). ``[[sinks]]`` and ``[[serial]]`` are arrays of tables.
Unknown keys are an error (a typo must not silently fall back to a default that decides when customs
are alarmed). Every refusal is one line naming the key as it is written in the file.

Two levels of checking: constructing a `GatewayConfig` checks types and ranges (in-process tools
such as the simulator build one directly, e.g. with `db_synchronous = "OFF"` on a throw-away
database); `check_service(config)` adds the combinations a long-running gateway must not start with
(an API beyond loopback without TLS, a durability setting that voids the ACK's promise).
`load_config` applies both.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationError
from pydantic.dataclasses import dataclass

HOUR = 3600.0

# Sink kinds the drivers know (gateway/sinks.py; the pipeline only needs their names for the outbox).
SINK_KINDS = ("jsonl", "mqtt", "webhook")

# strict: TOML has types, so a string where a number belongs is a mistake, never something to coerce.
_STRICT = ConfigDict(extra="forbid", strict=True, validate_assignment=True)

Seconds = Annotated[float, Field(gt=0)]
Port = Annotated[int, Field(ge=0, le=65535)]
Text = Annotated[str, Field(min_length=1)]

MASTER_KEY_ENV = "NAVSEAL_MASTER_KEY"


class ConfigError(ValueError):
    """A configuration file or value that cannot be used; the message names the key."""


@dataclass(config=_STRICT)
class SinkConfig:
    """One destination for operator events. Each sink has its own outbox rows and cursor."""

    name: Text
    type: Literal["jsonl", "mqtt", "webhook"]
    path: str | None = None  # jsonl: file path, "-" for stdout
    url: str | None = None  # webhook: POST target
    topic: str | None = None  # mqtt: topic events are published on
    headers: dict[str, str] = field(default_factory=dict)  # webhook: extra headers
    timeout_s: Annotated[float, Field(gt=0, le=600)] = 10.0

    def __post_init__(self) -> None:
        if self.type == "jsonl" and not self.path:
            raise ConfigError(f"[[sinks]] {self.name!r}: type jsonl needs 'path' (or '-' for stdout)")
        if self.type == "webhook" and not self.url:
            raise ConfigError(f"[[sinks]] {self.name!r}: type webhook needs 'url'")
        if self.type == "webhook" and self.url and not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"[[sinks]] {self.name!r}: url must start with http:// or https://")
        if self.type == "mqtt" and not self.topic:
            raise ConfigError(f"[[sinks]] {self.name!r}: type mqtt needs 'topic'")

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(config=_STRICT)
class SerialConfig:
    """One serial port carrying COBS-framed seal frames (a customs post reader, a bench)."""

    port: Text
    baudrate: Annotated[int, Field(ge=300, le=4_000_000)] = 115200


@dataclass(config=_STRICT)
class GatewayConfig:
    # --- storage ---
    db_path: Text = "navseal-gateway.sqlite3"
    # SQLite `synchronous` in WAL mode. FULL fsyncs the WAL at every commit: an ACK then really means
    # "survives power loss" (the seal frees its journal on it). NORMAL survives a process crash only.
    # OFF is for in-process tools on throw-away files; check_service refuses it (and EXTRA).
    db_synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "FULL"
    # The master key that encrypts seal keys at rest (AES-256-GCM): a file of 64 hex digits,
    # readable by the gateway's user only (0600), or the NAVSEAL_MASTER_KEY environment variable.
    master_key_file: str | None = None
    # PostgreSQL instead of the SQLite file: `[store] url = "postgresql://user:password@host/db"`
    # (libpq's URL form; the password may also come from ~/.pgpass or PGPASSWORD). Several gateways
    # share one database this way (docs/gateway.md, "Deployment"). Unset: SQLite at db_path.
    store_url: str | None = None

    # --- development ---
    # Accept the protocol's published test keys (sha256("navseal test key <id>")). Only for tests,
    # the demo and the emulator: the service logs it loudly at start and /healthz reports it.
    dev_test_keys: bool = False

    # --- rules (clause numbers of Order No. 407) ---
    signal_lost_after_s: Seconds = 3 * HOUR  # clause 3.8: signal lost for more than 3 hours
    # After a (re)start, SIGNAL_LOST waits this long so the broker's backlog is ingested first.
    startup_grace_s: Annotated[float, Field(ge=0)] = 120.0
    deactivation_deadline_s: Seconds = 1 * HOUR  # clause 14: deactivate within one hour
    # The seal's longest stretch without a valid fix (its evidence, its GNSS_LOST event) beyond
    # this is a non-routine situation (clause 3.8's three hours, measured by the seal).
    gnss_lost_after_s: Seconds = 3 * HOUR
    # More than this many frames of one seal in a row refused as replayed or forged (bad MAC) raise
    # one SEAL_REJECTING alarm: a seal the gateway no longer hears although it sends.
    seal_rejecting_after: Annotated[int, Field(ge=1, le=1_000_000)] = 20
    notify_deadline_s: Seconds = 1 * HOUR  # clause 11: offices told within one hour (NOTIFY_OVERDUE per sink)
    retention_years: Annotated[int, Field(ge=1, le=100)] = 5  # clause 18.3: five years after deactivation
    # Corridor hysteresis: ROUTE_DEVIATION when a fix is farther than the corridor half-width for
    # `route_confirm_fixes` fixes in a row; ROUTE_RETURNED only once a fix is back within
    # (corridor - route_hysteresis_m) (at most half the corridor). GNSS noise at the edge cannot flap.
    route_hysteresis_m: Annotated[float, Field(ge=0)] = 50.0
    route_confirm_fixes: Annotated[int, Field(ge=1, le=1000)] = 2
    # Densify route segments longer than this before sending (the wire's i16 deltas reach ~36 km).
    route_max_segment_m: Annotated[float, Field(gt=0, le=36_000)] = 30_000.0
    # Clause 10: ACTIVATED needs a fix taken after the seal was armed; allow this much clock slack.
    activation_fix_max_age_s: Seconds = 300.0
    low_battery_pct: Annotated[int, Field(ge=0, le=100)] = 20  # LOW_BATTERY below this
    low_battery_clear_pct: Annotated[int, Field(ge=0, le=100)] = 30  # re-armed once back above this

    # --- commands to seals ---
    # A seal counts as online (commands are sent to it) when it was heard within this window.
    online_window_s: Seconds = 15 * 60.0
    command_retry_initial_s: Seconds = 30.0
    command_retry_max_s: Seconds = 15 * 60.0  # capped exponential backoff
    command_epoch: Annotated[int, Field(ge=0, le=0xFFFFFFFF)] = 0  # downlink `boot`: bump only if the command store is reset

    # --- logging of refused frames ---
    hex_excerpt_bytes: Annotated[int, Field(ge=0, le=4096)] = 48

    # --- ingest drivers ---
    mqtt_host: str = "127.0.0.1"  # "" disables MQTT ingest
    mqtt_port: Port = 1883
    mqtt_topic_prefix: Text = "seals"  # seals/<id>/up and seals/<id>/down
    mqtt_client_id: Text = "navseal-gateway"
    mqtt_share_group: str | None = None  # "$share/<group>/seals/+/up" when set
    mqtt_session_expiry_s: Annotated[int, Field(ge=0, le=0xFFFFFFFF)] = 7 * 24 * 3600
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    mqtt_keepalive_s: Annotated[int, Field(ge=5, le=65535)] = 30
    mqtt_protocol: Literal["5", "3.1.1"] = "5"  # "3.1.1" for brokers without MQTT 5 (no shared subscriptions)
    # TLS to the broker (needed beyond loopback). tls_ca: the CA that signed the broker's
    # certificate (PEM; unset: the system's trust store); tls_cert/tls_key: a client
    # certificate, when the broker asks for one (require_certificate).
    mqtt_tls: bool = False
    mqtt_tls_ca: str | None = None
    mqtt_tls_cert: str | None = None
    mqtt_tls_key: str | None = None
    serial: list[SerialConfig] = field(default_factory=list)  # [[serial]] port, baudrate

    # --- logs ---
    log_format: Literal["json", "text"] = "json"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "debug", "info", "warning", "error"] = "INFO"

    # --- retention (clause 18.3) ---
    retention_purge_interval_s: Seconds = 24 * HOUR
    # The "day" of deactivation is a calendar day in Kazakhstan time (UTC+5 everywhere since
    # 1 March 2024); the purge uses this fixed offset, so it never depends on the host's zone.
    retention_utc_offset_h: Annotated[float, Field(ge=-14, le=14)] = 5.0
    # Records and uplink frames outside any escort (idle seals, frames before an activation): days kept.
    retention_unescorted_days: Annotated[float, Field(ge=1, le=36500)] = 90
    # An escort never deactivated (open past its period, or failed) expires this many days after its
    # period ended / its activation failed: ESCORT_EXPIRED, and its retention_years start then.
    retention_escort_horizon_days: Annotated[float, Field(ge=1, le=36500)] = 365

    # --- operator side: HTTP API ---
    http_host: Text = "127.0.0.1"
    http_port: Port = 8080
    # HTTPS for the API: both paths (PEM), or neither. Required when http_host is beyond loopback.
    http_tls_cert: str | None = None
    http_tls_key: str | None = None
    # Abuse limits (docs/gateway.md "HTTP API"): a request must arrive whole within
    # http_request_timeout_s; an idle keep-alive connection is closed after http_idle_timeout_s.
    http_request_timeout_s: Annotated[float, Field(gt=0, le=600)] = 10.0
    http_idle_timeout_s: Annotated[float, Field(gt=0, le=600)] = 5.0
    http_max_connections: Annotated[int, Field(ge=1, le=100_000)] = 1000
    # Browser sessions (cookie) expire after this much inactivity.
    http_session_idle_s: Annotated[float, Field(gt=0, le=7 * 24 * HOUR)] = 8 * HOUR

    # --- web console (docs/console.md) ---
    # An operator's own map tile server under the offline basemap, e.g.
    # "https://tiles.example.kz/{z}/{x}/{y}.png"; none: country borders only (no tile server, no CDN).
    console_tile_url: str | None = None
    console_tile_attribution: str = ""
    # Where the browser libraries are (npm: leaflet, world-atlas, topojson-client); default
    # tools/web/node_modules of this checkout, installed by `bash tools/run setup`.
    console_vendor_dir: str | None = None

    # --- sinks ---
    sinks: list[SinkConfig] = field(default_factory=list)
    sink_retry_initial_s: Seconds = 1.0
    sink_retry_max_s: Seconds = 300.0

    def __post_init__(self) -> None:
        if self.command_retry_max_s < self.command_retry_initial_s:
            raise ConfigError("command_retry_max_s must be >= command_retry_initial_s")
        if self.sink_retry_max_s < self.sink_retry_initial_s:
            raise ConfigError("sink_retry_max_s must be >= sink_retry_initial_s")
        if self.low_battery_clear_pct < self.low_battery_pct:
            raise ConfigError("low_battery_clear_pct must be >= low_battery_pct")
        if bool(self.http_tls_cert) != bool(self.http_tls_key):
            raise ConfigError("[http] tls_cert and tls_key: give both (HTTPS) or neither")
        if self.mqtt_share_group and self.mqtt_protocol != "5":
            raise ConfigError("[mqtt] share_group needs protocol = \"5\" (shared subscriptions are MQTT 5)")
        if self.console_tile_url is not None and not (
                self.console_tile_url.startswith(("https://", "http://"))
                and all(p in self.console_tile_url for p in ("{z}", "{x}", "{y}"))):
            raise ConfigError("[console] tile_url: an http(s) URL template with {z}, {x} and {y}")
        if (self.mqtt_tls_ca or self.mqtt_tls_cert or self.mqtt_tls_key) and not self.mqtt_tls:
            raise ConfigError("mqtt tls_ca/tls_cert/tls_key are set but mqtt tls is false")
        if bool(self.mqtt_tls_cert) != bool(self.mqtt_tls_key):
            raise ConfigError("mqtt tls_cert and tls_key go together")
        if self.store_url is not None:
            _check_store_url(self.store_url)
        names = [s.name for s in self.sinks]
        if len(set(names)) != len(names):
            raise ConfigError(f"[[sinks]] names must be unique: {names}")

    @property
    def sink_names(self) -> list[str]:
        return [s.name for s in self.sinks]

    @property
    def http_tls(self) -> bool:
        return bool(self.http_tls_cert and self.http_tls_key)


_FIELDS = {f.name: f for f in dataclasses.fields(GatewayConfig)}
# A [table] groups the keys it prefixes: [mqtt] port -> mqtt_port, [log] level -> log_level.
_TABLES = tuple(sorted({name.split("_", 1)[0] for name in _FIELDS if "_" in name}, key=len, reverse=True))


def _check_store_url(url: str) -> None:
    if not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError("[store] url: a postgresql:// URL (postgresql://user@host:5432/database); "
                          "leave it out for SQLite at db_path")
    try:
        import psycopg
    except ImportError:
        raise ConfigError("[store] url: PostgreSQL needs psycopg (pip install 'navseal[postgresql]')") from None
    try:
        psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error as exc:
        raise ConfigError(f"[store] url: {' '.join(str(exc).split())}") from None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_service(config: GatewayConfig) -> GatewayConfig:
    """The combinations a long-running gateway refuses to start with (ConfigError naming the key)."""
    if config.db_synchronous not in ("FULL", "NORMAL"):
        raise ConfigError(f"db_synchronous = {config.db_synchronous!r}: a gateway needs FULL (an ACK survives "
                          f"power loss) or NORMAL (survives a process crash)")
    if not is_loopback(config.http_host) and not config.http_tls:
        raise ConfigError(f"[http] host = {config.http_host!r} is beyond loopback: set [http] tls_cert and "
                          f"tls_key (HTTPS), or bind 127.0.0.1")
    for name in ("http_tls_cert", "http_tls_key"):
        path = getattr(config, name)
        if path and not os.path.isfile(path):
            raise ConfigError(f"{_toml_name(name)}: no such file {path!r}")
    return config


def config_from_dict(data: dict[str, Any]) -> GatewayConfig:
    """Build a config from parsed TOML (tables flatten to `<table>_<key>`); ConfigError naming the key."""
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key in ("sinks", "serial"):
            if not isinstance(value, list):
                raise ConfigError(f"'{key}' must be an array of tables ([[{key}]])")
            cls = SinkConfig if key == "sinks" else SerialConfig
            values[key] = [_table(cls, key, item) for item in value]
        elif isinstance(value, dict) and key not in _FIELDS:
            if not any(f.startswith(key + "_") for f in _FIELDS):
                raise ConfigError(f"unknown configuration table [{key}]")
            for sub, subvalue in value.items():
                _put(values, f"{key}_{sub}", subvalue)
        else:
            _put(values, key, value)
    return _build(GatewayConfig, values, "")


def load_config(path: str | Path | None = None, *, service: bool = False, **overrides: Any) -> GatewayConfig:
    """Load a TOML file (or only defaults when `path` is None), then apply keyword overrides.
    `service=True` also applies `check_service` (what `navseal gateway run` starts with)."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"{path}: {exc.strerror or exc}") from None
    for key in overrides:
        if key not in _FIELDS:
            raise ConfigError(f"unknown configuration key {key!r}")
    config = config_from_dict(data)
    if overrides:
        config = _build(GatewayConfig, {**_shallow(config), **overrides}, "")
    return check_service(config) if service else config


def effective(config: GatewayConfig) -> dict[str, Any]:
    """The configuration as the gateway uses it, secrets masked (for `check-config`)."""
    out = dataclasses.asdict(config)
    for key in ("mqtt_password",):
        if out.get(key):
            out[key] = "***"
    if out.get("store_url"):
        from .store.postgres import _safe

        out["store_url"] = _safe(out["store_url"])
    for sink in out["sinks"]:
        sink["headers"] = {k: "***" for k in sink.get("headers", {})}
    return out


def _shallow(config: GatewayConfig) -> dict[str, Any]:
    return {name: getattr(config, name) for name in _FIELDS}


def _put(values: dict[str, Any], key: str, value: Any) -> None:
    if key not in _FIELDS or key in ("sinks", "serial"):
        name = _toml_name(key)
        raise ConfigError(f"unknown configuration key {name if name.startswith('[') else repr(name)}")
    values[key] = value


def _table(cls: type, what: str, item: Any) -> Any:
    if not isinstance(item, dict):
        raise ConfigError(f"each [[{what}]] entry must be a table")
    label = item.get("name", item.get("port"))
    return _build(cls, item, f"[[{what}]] {label!r}: " if label else f"[[{what}]] ")


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    try:
        return cls(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err.get("loc", ()) if p != "__root__"]
        key = _toml_name(loc[0]) if loc and not where else ".".join(loc)
        if err.get("type") in ("unexpected_keyword_argument", "extra_forbidden"):
            raise ConfigError(f"{where}unknown configuration key {key}") from None
        if err.get("type") == "missing_argument" or err.get("type") == "missing":
            raise ConfigError(f"{where}{key}: required") from None
        if err.get("type") == "value_error":  # from __post_init__: its message already names the key
            message = str(err.get("ctx", {}).get("error") or err["msg"])
            raise ConfigError(message if message.startswith("[[") else f"{where}{message}") from None
        got = err.get("input")
        shown = f" (got {got!r})" if not isinstance(got, (dict, list)) else ""
        msg = err["msg"][:1].lower() + err["msg"][1:]
        raise ConfigError(f"{where}{key}: {msg}{shown}") from None
    except ConfigError as exc:
        raise ConfigError(f"{where}{exc}" if where and not str(exc).startswith("[[") else str(exc)) from None


def _toml_name(key: str) -> str:
    """`mqtt_port` -> `[mqtt] port` (how the file writes it); other keys as they are."""
    for table in ("mqtt", "http", "store"):  # the tables docs/gateway.md writes
        if key.startswith(table + "_"):
            return f"[{table}] {key[len(table) + 1:]}"
    return key
