"""The gateway's MQTT half alone, for the benchmark's ceiling phase (tools/bench/bench_gateway.py).

The real MQTT driver (gateway/mqtt_ingest.py) and the real runner (gateway/runner.py), wired as
`GatewayService` wires them, in a process of their own, in front of a pipeline stand-in that
decodes and authenticates each frame with the real codec and answers with the real ACK frame,
storing nothing. What that reaches, against the bare paho subscriber of the same run, is the most
the gateway can reach on this machine whatever the store costs: the MQTT half's ceiling.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

from prometheus_client import CollectorRegistry

from navseal.gateway.ingest import IngestResult
from navseal.gateway.metrics import ServiceMetrics
from navseal.protocol import NO_RSEQ, DecodeError, decode_frame, encode_ack

_U32 = 0xFFFFFFFF


class DecodeOnlyPipeline:
    """What the runner calls on a `Pipeline`, minus the store: a frame is decoded and authenticated
    (the seal's key), and accepted frames get their ACK (downlink seq counted per seal, acked
    (boot, seq), committed rseq = the frame's last record) exactly as ingest builds it."""

    def __init__(self, keys: dict[int, bytes], command_epoch: int = 0) -> None:
        self._keys = keys
        self._epoch = command_epoch
        self._downlink_seq: dict[int, int] = {}
        self.wakeup: Any = None
        self.last_tick_events: list[dict[str, Any]] = []
        self.last_store_error: str | None = None

    def handle_uplinks(self, items: Sequence[tuple[bytes, str]]) -> list[IngestResult]:
        return [self._one(raw) for raw, _source in items]

    def handle_uplink(self, raw: bytes, source: str = "") -> IngestResult:
        return self._one(raw)

    def _one(self, raw: bytes) -> IngestResult:
        try:
            frame = decode_frame(raw, self._keys.get, flat_records=True)
        except DecodeError as exc:
            return IngestResult("rejected", exc.code, exc.seal_id)
        seal_id = frame.seal_id
        if frame.mac_ok is not True:
            return IngestResult("rejected", "unknown_seal", seal_id, frame.type)
        p = frame.payload
        last_rseq = p["first_rseq"] + p["count"] - 1 if frame.type == "RECORDS" else p.get("rseq", NO_RSEQ)
        seq = self._downlink_seq.get(seal_id, 0)
        self._downlink_seq[seal_id] = seq + 1
        ack = encode_ack(seal_id, self._epoch, seq, int(time.time()) & _U32,
                         {"acked_boot": frame.boot, "acked_seq": frame.seq, "committed_rseq": last_rseq},
                         self._keys[seal_id])
        return IngestResult("accepted", None, seal_id, frame.type, downlink=[(seal_id, ack)])

    def next_deadline(self) -> float | None:
        return None

    def tick(self, now: float | None = None) -> list[tuple[int, bytes]]:
        return []

    def purge(self, now: float | None = None) -> dict[str, int]:
        return {}

    def probe_store(self) -> str | None:
        return None


def run_mqtt_half(host: str, port: int, keys: dict[int, bytes], client_id: str, ready, stop) -> None:
    """Process target: the driver and the runner on the stand-in until `stop` is set."""
    from navseal.gateway.mqtt_ingest import MqttIngest, MqttSettings
    from navseal.gateway.runner import PipelineRunner

    runner: PipelineRunner | None = None

    def submit(raw, source, reply, ack) -> None:  # as GatewayService._submit_mqtt
        runner.submit(raw, source, None, ack)

    driver = MqttIngest(MqttSettings(host=host, port=port, client_id=client_id), submit)
    runner = PipelineRunner(DecodeOnlyPipeline(keys), ServiceMetrics(CollectorRegistry()),  # type: ignore[arg-type]
                            default_downlink=driver.publish_downlink)
    runner.start()
    driver.start()
    if not driver.subscribed.wait(30):
        raise RuntimeError("the MQTT half did not subscribe")
    ready.set()
    stop.wait(900)
    driver.pause()
    runner.stop()
    driver.stop()
