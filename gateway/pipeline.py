"""The gateway's sans-I/O core: bytes and time in; committed state, downlink frames and events out.

`Pipeline.handle_uplink(raw, source)` runs one frame through
CRC -> decode -> authenticate (per-seal key) -> replay window -> de-duplicate -> escort state ->
rules -> durable commit, and only then builds the ACK. It owns no socket, thread, loop or sleep:
the drivers (gateway/mqtt_ingest.py, serial_ingest.py, the HTTP API, the CLI) call it and send what
it returns. Time comes from the injected `clock` (Unix seconds) and from `tick(now)`.

Thread-safety: every public method takes one lock, so drivers may call from several threads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from .config import GatewayConfig
from .store import Store

Clock = Callable[[], float]


class CommandError(ValueError):
    """A command request was refused. `code` is stable (HTTP/CLI map it), the message explains.

    Codes: "bad_request" (a field missing/invalid), "unknown_seal" (not provisioned),
    "busy" (the seal already has an open escort), "not_found" (no such escort),
    "not_active" (escort not in a state that allows this), "mismatch" (DEACTIVATE data do not
    match the escort: seal/declaration/vehicle).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class ActivationRequest:
    """Clause 8 data from the customs office of departure."""

    seal_id: int
    declaration: str  # transit declaration number (<= 40 bytes UTF-8)
    vehicle: str  # state registration number (<= 16 bytes)
    departure_office_code: str
    departure_office_name: str
    dest_office_code: str  # <= 16 bytes
    dest_office_name: str  # <= 64 bytes
    period_start: float  # Unix s
    period_end: float  # Unix s: transit deadline (TRANSIT_OVERDUE after it)
    route: Sequence[Sequence[float]] | None = None  # [(lat, lon)] degrees; geo.route_from_geojson/gpx
    corridor_m: int = 0  # half-width; 0 = no route check

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ActivationRequest":
        """From JSON (HTTP API / CLI): same field names; `route` may be [[lat, lon], ...], a GeoJSON
        object, or GPX text. Raises CommandError("bad_request") with the field named."""
        raise NotImplementedError


@dataclass
class IngestResult:
    """What one uplink frame produced. Downlink frames are safe to send: the commit is done."""

    result: str  # "accepted" | "duplicate" | "rejected"
    reason: str | None = None  # rejection reason: a DecodeError code, "unknown_seal", "replayed",
    #                            "wrong_direction", "store_error", "internal_error"
    seal_id: int | None = None
    frame_type: str | None = None
    records_committed: int = 0  # new records stored by this frame (duplicates not counted)
    records_duplicate: int = 0
    downlink: list[tuple[int, bytes]] = field(default_factory=list)  # (seal_id, frame) to send
    events: list[dict[str, Any]] = field(default_factory=list)  # new events (already in the outbox)
    ingest_s: float = 0.0  # processing time of this frame (process clock)

    @property
    def accepted(self) -> bool:
        return self.result in ("accepted", "duplicate")


class Pipeline:
    """See the module docstring. Construct once per process (or per store) and share it."""

    def __init__(self, store: Store, config: GatewayConfig | None = None, clock: Clock | None = None) -> None:
        raise NotImplementedError

    # --- ingest ---
    def handle_uplink(self, raw: bytes, source: str = "") -> IngestResult:
        """One frame in; never raises. The ACK (if any) is in `result.downlink`, built after commit."""
        raise NotImplementedError

    def handle_uplinks(self, items: Sequence[tuple[bytes, str]]) -> list[IngestResult]:
        """Several frames in ONE transaction (one savepoint each), results in input order; ACKs
        are built only after the single commit. Faster than frame by frame (one fsync)."""
        raise NotImplementedError

    # --- time ---
    def tick(self, now: float | None = None) -> list[tuple[int, bytes]]:
        """Run the timed rules (SIGNAL_LOST, TRANSIT_OVERDUE, DEACTIVATION_OVERDUE) and command
        retries at `now` (default: the clock). Returns downlink frames to send (seal_id, bytes).
        New events go to the outbox; `last_tick_events` holds them for the caller's logs."""
        raise NotImplementedError

    def next_deadline(self) -> float | None:
        """The earliest time at which `tick` has something to do (None: nothing pending)."""
        raise NotImplementedError

    # --- commands (CLI / HTTP API) ---
    def provision_seal(self, seal_id: int, key: bytes) -> None:
        """Register a seal and its 32-byte key (or replace the key)."""
        raise NotImplementedError

    def request_activation(self, request: ActivationRequest) -> dict[str, Any]:
        """Create the escort and queue ACTIVATE for the seal. Returns the escort (status dict).
        Raises CommandError."""
        raise NotImplementedError

    def request_deactivation(self, seal_id: int, declaration: str, vehicle: str) -> dict[str, Any]:
        """Clause 13: queue DEACTIVATE if seal, declaration and vehicle match the seal's escort;
        emits DEACTIVATION_REQUESTED and starts the one-hour deadline. Raises CommandError."""
        raise NotImplementedError

    def status(self, *, seal_id: int | None = None, escort_id: int | None = None,
               declaration: str | None = None, vehicle: str | None = None) -> list[dict[str, Any]]:
        """Escorts matching the filters (all open escorts when none is given), each with its seal's
        last seen time, last position and open commands."""
        raise NotImplementedError

    # --- metrics for the drivers (Prometheus) ---
    def metrics(self) -> dict[str, Any]:
        """Snapshot: frames {(result, reason): n}, records, events {kind: n}, commands {...},
        alarm latency and ingest time histograms. See docs/events.md#metrics."""
        raise NotImplementedError

    def purge(self, now: float | None = None) -> dict[str, int]:
        """Retention purge (clause 18.3) at `now`; counts of deleted rows per table."""
        raise NotImplementedError
