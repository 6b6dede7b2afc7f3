"""Several gateways, one truth: three `navseal gateway run` processes on one MQTT 5 shared
subscription (a real Mosquitto) and one PostgreSQL (the tests' private cluster).

Seals behave as the firmware does: stop-and-wait (the next journal frame only after the ACK of the
previous one), re-sending a frame that got no ACK. A seal's frames may reach any instance. While the
seals stream, one instance is killed (SIGKILL) and brought back, another is killed and left down,
and PostgreSQL is restarted. Then: every record stored once, every event stored once and delivered
to the sink (a repeat carries the same event_id and body), every escort's SIGNAL_LOST deadline
fired once (per silence) although every live instance watches it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from fixtures_postgres import PgCluster

from gateway_harness import (
    GatewayProcess,
    MqttSeal,
    activation_body,
    free_port,
    get_json,
    make_tokens,
    post_json,
    read_jsonl,
    wait_until,
    write_config,
)
from navseal.gateway.store.postgres import PgStore
from navseal.protocol import decode_frame

INSTANCES = 3
SEALS = 6
FRAMES = 14  # RECORDS frames per seal, 10 records each
SIGNAL_LOST_S = 6.0


class StopAndWaitSeal(MqttSeal):
    """A seal that sends one frame at a time and re-sends it until its ACK comes (as the firmware)."""

    resend_s = 2.0

    def exchange(self, frame: bytes, timeout: float = 90.0) -> list:
        """Send `frame` until ACKed; the other downlinks seen meanwhile (commands), decoded."""
        seq = decode_frame(frame, self.frames.key).seq
        others = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.send(frame)
            resend_at = time.monotonic() + self.resend_s
            while time.monotonic() < resend_at:
                try:
                    raw = self.downlinks.get(timeout=0.1)
                except Exception:
                    continue
                down = decode_frame(raw, self.frames.key)
                if down.type == "ACK" and down.payload["acked_seq"] == seq:
                    return others
                if down.type != "ACK":
                    others.append((down, raw))
        raise AssertionError(f"seal {self.seal_id}: frame seq {seq} never acknowledged")


@pytest.fixture
def fleet(tmp_path, mosquitto_broker, pg_cluster: PgCluster):
    url = pg_cluster.database(str(tmp_path / "shared"))
    events = tmp_path / "events.jsonl"
    gateways = []
    for i in range(INSTANCES):
        port = free_port()
        config = write_config(
            tmp_path / f"gw{i}.toml", mosquitto_broker, db=tmp_path / f"unused{i}.sqlite3", http_port=port,
            sinks=[{"name": "file", "type": "jsonl", "path": str(events)}],
            client_id=f"navseal-gw-{i}", mqtt={"share_group": "navseal"}, store_url=url,
            settings={"signal_lost_after_s": SIGNAL_LOST_S, "startup_grace_s": 0.0})
        gateways.append(GatewayProcess(config, port, tmp_path / f"gw{i}.log"))
    tokens = make_tokens(tmp_path / "unused.sqlite3", store_url=url)
    for gw in gateways:
        gw.tokens = tokens
    seals: list[StopAndWaitSeal] = []

    class Fleet:
        pass

    fleet = Fleet()
    fleet.url, fleet.events, fleet.gateways, fleet.tokens, fleet.seals = url, events, gateways, tokens, seals
    fleet.broker, fleet.cluster = mosquitto_broker, pg_cluster
    yield fleet
    for s in seals:
        s.close()
    for gw in gateways:
        gw.kill()


def _signal(events: list[dict], seal_id: int) -> list[str]:
    return [e["kind"] for e in events if e["seal_id"] == seal_id and e["kind"] in ("SIGNAL_LOST", "SIGNAL_RESTORED")]


def _activate(api: str, token: str, seal: StopAndWaitSeal) -> None:
    status, body = post_json(api + "/v1/seals", {"seal_id": seal.seal_id, "key": seal.frames.key.hex()}, token=token)
    assert status == 201, body
    status, body = post_json(api + "/v1/escorts/activate", activation_body(seal.seal_id), token=token)
    assert status == 202, body
    commands = seal.exchange(seal.frames.hello())
    deadline = time.monotonic() + 30
    while not any(c.type == "ACTIVATE" for c, _ in commands):  # sent with the ACK, or by a tick
        assert time.monotonic() < deadline, "no ACTIVATE"
        commands += [(f, raw) for raw in [seal.downlinks.get(timeout=30)]
                     for f in [decode_frame(raw, seal.frames.key)] if f.type != "ACK"]
    activate_raw = next(raw for c, raw in commands if c.type == "ACTIVATE")
    seal.exchange(seal.frames.command_result(activate_raw))
    seal.exchange(seal.frames.records(1))


def test_three_gateways_one_postgresql_kill_restart_and_database_restart(fleet):
    for gw in fleet.gateways:
        gw.start(timeout=60)
    operator = fleet.tokens["operator"]
    api = fleet.gateways[0].api
    seals = [StopAndWaitSeal(fleet.broker, 5000 + i) for i in range(SEALS)]
    fleet.seals.extend(seals)
    for seal in seals:
        _activate(api, operator, seal)
    assert wait_until(lambda: all(e["status"] == "active" for e in get_json(api + "/v1/escorts", operator)[1]["escorts"]),
                      timeout=30)

    progress = Counter()
    errors: list[BaseException] = []

    def stream(seal: StopAndWaitSeal) -> None:
        try:
            for _ in range(FRAMES):
                seal.exchange(seal.frames.records(10))
                progress[seal.seal_id] += 1
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=stream, args=(s,)) for s in seals]
    for t in threads:
        t.start()
    back, down = fleet.gateways[1], fleet.gateways[2]
    assert wait_until(lambda: sum(progress.values()) >= SEALS * 3, timeout=90)
    back.kill()  # mid-stream: its in-flight frames stay in its session at the broker
    assert wait_until(lambda: sum(progress.values()) >= SEALS * 5, timeout=90)
    back.start(timeout=60)  # ...and come back with it
    assert wait_until(lambda: sum(progress.values()) >= SEALS * 7, timeout=90)
    down.kill()  # left down: the seals re-send what it never answered, another instance takes it
    assert wait_until(lambda: sum(progress.values()) >= SEALS * 9, timeout=120)
    if fleet.cluster.datadir is not None:  # our own cluster (not one given by NAVSEAL_TEST_PG_URL)
        fleet.cluster.restart()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert all(progress[s.seal_id] == FRAMES for s in seals)
    assert sum(progress.values()) == SEALS * FRAMES

    # Every record once: the journal of each seal, 1..top, no gap (the key forbids duplicates).
    store = PgStore(fleet.url)
    try:
        for seal in seals:
            assert [r["rseq"] for r in store.records(seal.seal_id)] == list(range(1, seal.frames.rseq))
        # The seals fall silent: SIGNAL_LOST is due for every escort, watched by both live instances.
        assert wait_until(lambda: all(_signal(store.events(limit=1_000_000), s.seal_id)[-1:] == ["SIGNAL_LOST"]
                                      for s in seals), timeout=SIGNAL_LOST_S + 60)
        time.sleep(3)  # a second firing would come within the runners' next ticks
        events = store.events(limit=1_000_000)
    finally:
        store.close()
    kinds = Counter((e["kind"], e["seal_id"]) for e in events)
    for seal in seals:
        assert kinds[("ACTIVATED", seal.seal_id)] == 1
        # Each silence fired once: SIGNAL_LOST and SIGNAL_RESTORED alternate (a stall of the stream
        # longer than SIGNAL_LOST_S, e.g. during the PostgreSQL restart, is a silence too), and the
        # final silence ends the list.
        signal = _signal(events, seal.seal_id)
        assert signal and signal[-1] == "SIGNAL_LOST", signal
        assert all(a != b for a, b in zip(signal, signal[1:])), f"seal {seal.seal_id}: a deadline fired twice: {signal}"
    assert len({e["event_id"] for e in events}) == len(events)

    # Every stored event reaches the sink, delivered by one instance at a time from one cursor; a
    # repeat (an instance killed between delivering and moving the cursor) is the same event.
    by_id = {e["event_id"]: e for e in events}
    assert wait_until(lambda: set(by_id) <= {e["event_id"] for e in read_jsonl(fleet.events)}, timeout=60)
    delivered = read_jsonl(fleet.events)
    assert all(e == by_id[e["event_id"]] for e in delivered if e["event_id"] in by_id)
    repeats = len(delivered) - len({e["event_id"] for e in delivered})
    assert repeats <= 200, f"{repeats} events delivered twice: more than one kill's batch"
