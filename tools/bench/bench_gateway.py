"""Gateway benchmark: end-to-end through a real Mosquitto started with the project config.

Past 400 lines on purpose: the phases share one broker and gateway set-up, one way to count
what was committed and one report; each phase alone is short.

    python -m navseal.bench.bench_gateway                 # default sizes (~1 minute)
    python -m navseal.bench.bench_gateway --seals 5 --frames 3 --latency-s 1 --no-scaling   # smoke

Phases (each with a fresh broker, gateway processes started as `navseal gateway run`):

A. Throughput. Seals publish RECORDS frames (60 records each, QoS 1) as fast as one paho publisher
   can. In the same run a bare paho subscriber (own persistent session on `seals/+/up`, counts
   messages, nothing else) and the gateway consume the same stream. Gateway rate: frames committed
   per second, timed by the ACK downlinks (an ACK leaves only after its frame's commit) as seen by
   the seals, first ACK to last; records/s = 60 x that, checked against the store at the end.
   Bare rate: messages per second, first to last arrival. Ratio = gateway frames/s / bare msgs/s.
   CPU per message: each consumer's CPU time (all threads; the gateway's from /proc) over what it
   took, and bare's over the gateway's: the rate ratio if each had a core of its own and were
   CPU-bound. Steadier than the rates when other work shares the box.
B. Latency. A paced stream (a fraction of A's gateway rate) with the gateway keeping up: p50/p99
   from publish to the ACK's arrival at the seal (an upper bound on publish-to-commit), and for
   alarms (CABLE_CUT EVENT frames from active escorts) publish to arrival of the
   UNAUTHORIZED_OPENING event on the operator MQTT sink topic.
A0. The MQTT half's ceiling: phase A again (own broker, own bare subscriber, same stream) with the
   gateway replaced by its real MQTT driver and runner in front of a pipeline stand-in that decodes,
   authenticates and ACKs each frame with the real codec and stores nothing (mqtt_ceiling.py): the
   ratio the gateway could reach with a free store. --no-ceiling skips it.
A'. With --postgresql: phase A again with the gateway on PostgreSQL (a private cluster, fsync off,
   or --store-url), its own bare subscriber in the same run.
C. Scaling. Two gateway instances on a shared subscription ($share/bench/seals/+/up), each with its
   own SQLite file, versus one instance on the same shared subscription, same stream: ratio of
   committed frames per second.
C'. With --postgresql-scaling: phase C with the instances sharing one PostgreSQL database.

All processes share this machine's cores (broker, publisher, subscriber, gateways): the figures are
for this machine, printed with `nproc`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from navseal.bench.seal_frames import SealFrames
from navseal.gateway.mosquitto_broker import MosquittoBroker, free_port
from navseal.protocol import fastpath, schema

NAVSEAL = str(Path(sys.executable).with_name("navseal"))
ACK_TYPE = schema.MSG_TYPES["ACK"]
_ACK = struct.Struct(fastpath.struct_format(schema.Ack))  # read off the construct definition
PUBLISH_WINDOW = 900  # frames the publisher leaves unacknowledged (the broker takes 1,000)


# ------------------------------------------------------------------------------------------------
# the other processes of a run: publisher, bare subscriber, seals' ACK counters
# ------------------------------------------------------------------------------------------------


def _client(client_id: str, *, persistent: bool = False) -> tuple[mqtt.Client, Properties | None]:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1000)
    props = None
    if persistent:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
    return client, props


def bare_subscriber(host: str, port: int, expected: int, ready, out) -> None:
    """Counts messages on seals/+/up; reports (count, first, last arrival)."""
    client, props = _client("bench-bare", persistent=True)
    state = {"n": 0, "first": None, "last": None}
    done = threading.Event()

    def on_message(c, u, m) -> None:
        now = time.time()
        if state["first"] is None:
            state["first"] = now
        state["last"] = now
        state["n"] += 1
        if state["n"] >= expected:
            done.set()

    def on_subscribe(*_args) -> None:
        state["cpu0"] = time.process_time()
        ready.set()

    client.on_message = on_message
    client.on_subscribe = on_subscribe
    client.on_connect = lambda c, u, f, rc, p: c.subscribe("seals/+/up", qos=1)
    client.connect(host, port, clean_start=False, properties=props)
    client.loop_start()
    done.wait(600)
    cpu = time.process_time() - state["cpu0"]
    client.loop_stop()
    out.put(("bare", state["n"], state["first"], state["last"], cpu))


def seal_side_listener(host: str, port: int, expected_acks: int, expected_alarms: int, ready, out,
                       idle_s: float) -> None:
    """The seals' view: ACK downlinks (seal, acked_seq) -> arrival time; and the operator's view:
    UNAUTHORIZED_OPENING events on the sink topic -> arrival time."""
    client, _ = _client("bench-seal-side")
    acks: dict[tuple[int, int], float] = {}
    alarms: dict[int, float] = {}
    last_activity = [time.time()]
    subscribed = [0]

    def on_message(c, u, m) -> None:
        now = time.time()
        last_activity[0] = now
        if m.topic.endswith("/down"):
            data = m.payload
            if len(data) >= schema.MIN_FRAME + _ACK.size and data[3] == ACK_TYPE:
                seal_id = int.from_bytes(data[5:9], "big")
                _, acked_seq, _ = _ACK.unpack_from(data, schema.HEADER_SIZE)
                acks.setdefault((seal_id, acked_seq), now)
        else:
            event = json.loads(m.payload)
            alarms.setdefault(event["seal_id"], now)

    def on_subscribe(*a) -> None:
        subscribed[0] += 1
        if subscribed[0] == 2:
            ready.set()

    client.on_message = on_message
    client.on_subscribe = on_subscribe
    client.connect(host, port)
    client.subscribe("seals/+/down", qos=1)
    client.subscribe("navseal/events/+/UNAUTHORIZED_OPENING", qos=1)
    client.loop_start()
    while True:
        time.sleep(0.05)
        if len(acks) >= expected_acks and len(alarms) >= expected_alarms:
            break
        if time.time() - last_activity[0] > idle_s:
            break
    client.loop_stop()
    out.put(("seal_side", {f"{k[0]}:{k[1]}": v for k, v in acks.items()}, alarms))


# ------------------------------------------------------------------------------------------------
# set-up
# ------------------------------------------------------------------------------------------------


def open_bench_store(path: Path, store_url: str | None = None, synchronous: str = "FULL"):
    """The run's store: PostgreSQL at `store_url`, else the SQLite file `path`."""
    from navseal.gateway.store import SqliteStore

    if store_url:
        from navseal.gateway.store.postgres import PgStore

        return PgStore(store_url)
    return SqliteStore(str(path), synchronous=synchronous)


def prepare_db(path: Path, seals: list[SealFrames], alarm_seals: list[SealFrames], synchronous: str,
               store_url: str | None = None) -> None:
    """Provision every seal; bring the alarm seals' escorts to ACTIVE in-process (the clause 8/10
    exchange played through the real pipeline), so the run can raise alarms on them."""
    from navseal.gateway.config import load_config
    from navseal.gateway.command_requests import ActivationRequest
    from navseal.gateway.pipeline import Pipeline

    store = open_bench_store(path, store_url, synchronous)
    pipeline = Pipeline(store, load_config(None, db_path=str(path), store_url=store_url))
    now = time.time()
    for seal in seals + alarm_seals:
        pipeline.provision_seal(seal.seal_id, seal.key)
    for seal in alarm_seals:
        pipeline.request_activation(ActivationRequest(
            seal_id=seal.seal_id, declaration=f"BENCH/{seal.seal_id}", vehicle="BENCH01",
            departure_office_code="10228010", departure_office_name="Almaty",
            dest_office_code="10232010", dest_office_name="Khorgos",
            period_start=now - 60, period_end=now + 86400))
        result = pipeline.handle_uplink(seal.hello(), "bench")
        activate = [raw for sid, raw in result.downlink if raw[3] == 0x82]
        if not activate:
            raise RuntimeError(f"seal {seal.seal_id}: no ACTIVATE after HELLO: {result}")
        pipeline.handle_uplink(seal.command_result(activate[0]), "bench")
        pipeline.handle_uplink(seal.records(1), "bench")
        status = pipeline.status(seal_id=seal.seal_id)[0]["status"]
        if status != "active":
            raise RuntimeError(f"seal {seal.seal_id}: escort {status}, expected active")
    store.close()
    _bench_token(path, store_url)


# The bench's gateways: a master key in the environment (seal keys are encrypted at rest), the
# published test keys accepted (the bench's seals use them), and an auditor token to read /metrics.
_MASTER_KEY = os.urandom(32).hex()
_TOKEN: dict[str, str] = {}


def _bench_token(db: Path, store_url: str | None = None) -> None:
    from navseal.gateway import auth

    store = open_bench_store(db, store_url)
    try:
        with store.transaction() as tx:
            if tx.get_user(name="bench") is None:
                auth.add_user(tx, name="bench", role="auditor", now=time.time(), created_by=auth.host_actor())
            _TOKEN["auditor"] = auth.issue_token(tx, "bench", now=time.time())[1]
    finally:
        store.close()


def write_gateway_config(path: Path, broker: MosquittoBroker, db: Path, *, client_id: str,
                         share_group: str | None, synchronous: str, store_url: str | None = None) -> int:
    http_port = free_port()
    lines = [
        f'db_path = "{db}"', f'db_synchronous = "{synchronous}"', 'log_level = "WARNING"', "dev_test_keys = true",
        "[mqtt]", f'host = "{broker.host}"', f"port = {broker.port}", f'client_id = "{client_id}"',
    ]
    if share_group:
        lines.append(f'share_group = "{share_group}"')
    lines += ["[http]", f"port = {http_port}"]
    if store_url:
        lines += ["[store]", f"url = {json.dumps(store_url)}"]
    lines += ["[[sinks]]", 'name = "ops"', 'type = "mqtt"', 'topic = "navseal/events"']
    path.write_text("\n".join(lines) + "\n")
    return http_port


def start_gateway(config: Path, http_port: int, log: Path) -> subprocess.Popen:
    import urllib.request

    proc = subprocess.Popen([NAVSEAL, "gateway", "run", "--init", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=open(log, "ab"),
                            env=dict(os.environ, NAVSEAL_MASTER_KEY=_MASTER_KEY))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("gateway did not become healthy")


def scrape(http_port: int) -> dict[str, float]:
    import urllib.request

    values = {}
    request = urllib.request.Request(f"http://127.0.0.1:{http_port}/metrics",
                                     headers={"Authorization": f"Bearer {_TOKEN['auditor']}"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        for line in resp.read().decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
    return values


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def make_frames(seals: list[SealFrames], frames_per_seal: int, records: int) -> list[tuple[int, int, bytes]]:
    """Round-robin over seals, as a fleet reporting in: (seal_id, seq, frame)."""
    out = []
    for _ in range(frames_per_seal):
        for seal in seals:
            frame = seal.records(records)
            out.append((seal.seal_id, seal.seq - 1, frame))
    return out


def publish(frames: list[tuple[int, int, bytes]], host: str, port: int, *, rate: float | None = None,
            extra: list[tuple[float, int, int, bytes]] | None = None) -> dict[tuple[int, int], float]:
    """Publish frames at QoS 1 (paced to `rate` frames/s when given); returns publish times.
    `extra`: (offset_s, seal_id, seq, frame) published at that offset (alarms).

    The window of unacknowledged frames (the broker's Receive Maximum) is kept here, paho's own
    limit off: with it on, paho walks every message in flight on each PUBACK, and the stream
    was the publisher's pace (~3,000 frames/s here), below what the bare subscriber takes."""
    client, _ = _client("bench-publisher")
    client.max_inflight_messages_set(0)
    acked = [0]
    room = threading.Event()

    def on_publish(*_args) -> None:
        acked[0] += 1
        room.set()

    client.on_publish = on_publish
    client.connect(host, port)
    client.loop_start()
    sent: dict[tuple[int, int], float] = {}
    extra = sorted(extra or [])
    start = time.time()
    infos = []
    window = PUBLISH_WINDOW

    def wait_for_room() -> None:
        while len(infos) - acked[0] >= window:
            room.clear()
            if len(infos) - acked[0] < window:
                return
            room.wait(0.01)
    for i, (seal_id, seq, frame) in enumerate(frames):
        if rate:
            due = start + i / rate
            while extra and start + extra[0][0] <= due:
                _, a_seal, a_seq, a_frame = extra.pop(0)
                wait_for_room()
                sent[(a_seal, a_seq)] = time.time()
                infos.append(client.publish(f"seals/{a_seal}/up", a_frame, qos=1))
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
        wait_for_room()
        sent[(seal_id, seq)] = time.time()
        infos.append(client.publish(f"seals/{seal_id}/up", frame, qos=1))
    for _, a_seal, a_seq, a_frame in extra:
        wait_for_room()
        sent[(a_seal, a_seq)] = time.time()
        infos.append(client.publish(f"seals/{a_seal}/up", a_frame, qos=1))
    for info in infos:
        info.wait_for_publish(120)
    client.loop_stop()
    client.disconnect()
    return sent


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system, all threads) a process has used so far; None off Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def count_records(db: Path, store_url: str | None = None) -> int:
    store = open_bench_store(db, store_url)
    try:
        return store.counts()["records"]
    finally:
        store.close()


# ------------------------------------------------------------------------------------------------
# phases
# ------------------------------------------------------------------------------------------------


def phase_throughput(work: Path, args, store_url: str | None = None, name: str = "a",
                     ceiling: bool = False) -> dict:
    """Phase A; with `ceiling`, the gateway is its MQTT half alone (driver and runner in front of a
    pipeline stand-in that decodes, authenticates and ACKs, storing nothing: mqtt_ceiling.py)."""
    seals = [SealFrames(100_000 + i) for i in range(args.seals)]
    db = work / f"{name}.sqlite3"
    if not ceiling:
        prepare_db(db, seals, [], args.synchronous, store_url)
    frames = make_frames(seals, args.frames, args.records)
    with MosquittoBroker(work / f"broker-{name}") as broker:
        ctx = mp.get_context("fork")
        if ceiling:
            from navseal.bench.mqtt_ceiling import run_mqtt_half

            half_ready, half_stop = ctx.Event(), ctx.Event()
            half = ctx.Process(target=run_mqtt_half, args=(broker.host, broker.port,
                                                          {s.seal_id: s.key for s in seals}, "bench-gw",
                                                          half_ready, half_stop))
            half.start()
            if not half_ready.wait(30):
                raise RuntimeError("the MQTT half did not start")
        else:
            config = work / f"{name}.toml"
            http_port = write_gateway_config(config, broker, db, client_id="bench-gw", share_group=None,
                                             synchronous=args.synchronous, store_url=store_url)
            gateway = start_gateway(config, http_port, work / f"gw-{name}.log")
        out = ctx.Queue()
        bare_ready, side_ready = ctx.Event(), ctx.Event()
        bare = ctx.Process(target=bare_subscriber, args=(broker.host, broker.port, len(frames), bare_ready, out))
        side = ctx.Process(target=seal_side_listener,
                           args=(broker.host, broker.port, len(frames), 0, side_ready, out, args.idle_s))
        bare.start()
        side.start()
        bare_ready.wait(10)
        side_ready.wait(10)
        consumer = half.pid if ceiling else gateway.pid
        cpu0 = cpu_seconds(consumer)
        t0 = time.time()
        publish(frames, broker.host, broker.port)
        publish_s = time.time() - t0
        results = dict((item[0], item[1:]) for item in (out.get(timeout=900), out.get(timeout=900)))
        cpu1 = cpu_seconds(consumer)
        bare.join(10)
        side.join(10)
        if ceiling:
            half_stop.set()
            half.join(30)
            metrics = {}
        else:
            metrics = scrape(http_port)
            stop(gateway)
    n_bare, first, last, bare_cpu = results["bare"]
    acks = list(results["seal_side"][0].values())
    # CPU per message, the consumer's against the bare subscriber's: what each costs whatever the
    # other processes on the box take (the rates above depend on that too).
    gw_cpu = (cpu1 - cpu0) if cpu0 is not None and cpu1 is not None else float("nan")
    bare_rate = n_bare / max(1e-9, last - first)
    gw_rate = len(acks) / max(1e-9, max(acks) - min(acks)) if acks else 0.0
    stored = 0 if ceiling else count_records(db, store_url)
    return {
        "frames": len(frames), "records_per_frame": args.records, "publish_rate": len(frames) / publish_s,
        "bare_msgs": n_bare, "bare_rate": bare_rate, "acked_frames": len(acks),
        "gateway_frames_per_s": gw_rate, "gateway_records_per_s": gw_rate * args.records,
        "records_in_store": stored, "records_expected": len(frames) * args.records,
        "ratio": gw_rate / bare_rate if bare_rate else float("nan"),
        "bare_cpu_us_per_msg": bare_cpu / max(1, n_bare) * 1e6,
        "gateway_cpu_us_per_frame": gw_cpu / max(1, len(acks)) * 1e6,
        "mean_batch_frames": metrics.get("navseal_ingest_batch_frames_sum", 0)
        / max(1.0, metrics.get("navseal_ingest_batch_frames_count", 0)),
    }


def phase_pipeline_alone(work: Path, args) -> float:
    """The same frames through the sans-I/O pipeline in this process, batches of 256, no network:
    the ceiling the drivers can reach (frames/s)."""
    from navseal.gateway.config import load_config
    from navseal.gateway.pipeline import Pipeline
    from navseal.gateway.store import SqliteStore

    seals = [SealFrames(500_000 + i) for i in range(args.seals)]
    db = work / "p.sqlite3"
    prepare_db(db, seals, [], args.synchronous)
    frames = [(frame, "bench") for _, _, frame in make_frames(seals, args.frames, args.records)]
    store = SqliteStore(str(db), synchronous=args.synchronous)
    pipeline = Pipeline(store, load_config(None, db_path=str(db)))
    start = time.perf_counter()
    for i in range(0, len(frames), 256):
        pipeline.handle_uplinks(frames[i:i + 256])
    elapsed = time.perf_counter() - start
    store.close()
    return len(frames) / elapsed


def phase_latency(work: Path, args, gw_rate: float) -> dict:
    seals = [SealFrames(200_000 + i) for i in range(args.seals)]
    alarm_seals = [SealFrames(300_000 + i) for i in range(args.alarms)]
    db = work / "b.sqlite3"
    prepare_db(db, seals, alarm_seals, args.synchronous)
    rate = max(5.0, gw_rate * args.latency_load)
    count = max(10, int(rate * args.latency_s))
    per_seal = max(1, count // len(seals))
    frames = make_frames(seals, per_seal, args.records)
    duration = len(frames) / rate
    extra = []
    for i, seal in enumerate(alarm_seals):
        frame = seal.event("CABLE_CUT", cable_intact=False)
        extra.append(((i + 0.5) * duration / max(1, len(alarm_seals)), seal.seal_id, seal.seq - 1, frame))
    with MosquittoBroker(work / "broker-b") as broker:
        config = work / "b.toml"
        http_port = write_gateway_config(config, broker, db, client_id="bench-gw-b", share_group=None,
                                         synchronous=args.synchronous)
        gateway = start_gateway(config, http_port, work / "gw-b.log")
        ctx = mp.get_context("fork")
        out, ready = ctx.Queue(), ctx.Event()
        side = ctx.Process(target=seal_side_listener,
                           args=(broker.host, broker.port, len(frames) + len(extra), len(alarm_seals), ready, out,
                                 args.idle_s))
        side.start()
        ready.wait(10)
        sent = publish(frames, broker.host, broker.port, rate=rate, extra=extra)
        _, acks, alarms = out.get(timeout=900)
        side.join(10)
        stop(gateway)
    lat = [acks[f"{s}:{q}"] - t for (s, q), t in sent.items() if f"{s}:{q}" in acks]
    alarm_lat = [alarms[seal_id] - sent[(seal_id, seq)] for _, seal_id, seq, _ in extra if seal_id in alarms]
    return {
        "rate": rate, "frames": len(frames) + len(extra), "acked": len(lat),
        "commit_p50_ms": pct(lat, 0.5) * 1000, "commit_p99_ms": pct(lat, 0.99) * 1000,
        "alarms": len(extra), "alarms_delivered": len(alarm_lat),
        "alarm_p50_ms": pct(alarm_lat, 0.5) * 1000, "alarm_p99_ms": pct(alarm_lat, 0.99) * 1000,
        "alarm_max_ms": (max(alarm_lat) * 1000) if alarm_lat else float("nan"),
    }


def phase_scaling(work: Path, args, instances: int, store_url: str | None = None) -> dict:
    """`instances` gateways on one shared subscription: each with its own SQLite file, or all on
    the one PostgreSQL database at `store_url` (several gateways, one truth)."""
    # On one database a seal's frames may reach both instances at once; the (boot, seq) window then
    # refuses the older one, as it must. Real seals keep one journal frame in flight (stop-and-wait);
    # this stream does not wait, so on PostgreSQL each seal sends one frame (as many seals x frames).
    per_seal, count = (1, args.seals * args.frames) if store_url else (args.frames, args.seals)
    seals = [SealFrames(400_000 + i) for i in range(count)]
    dbs = [work / f"c{instances}-{i}.sqlite3" for i in range(instances)]
    for db in (dbs[:1] if store_url else dbs):
        prepare_db(db, [SealFrames(s.seal_id) for s in seals], [], args.synchronous, store_url)
    frames = make_frames(seals, per_seal, args.records)
    with MosquittoBroker(work / f"broker-c{instances}") as broker:
        gateways, ports = [], []
        for i, db in enumerate(dbs):
            config = work / f"c{instances}-{i}.toml"
            port = write_gateway_config(config, broker, db, client_id=f"bench-gw-c{i}", share_group="bench",
                                        synchronous=args.synchronous, store_url=store_url)
            ports.append(port)
            gateways.append(start_gateway(config, port, work / f"gw-c{instances}-{i}.log"))
        ctx = mp.get_context("fork")
        out, ready = ctx.Queue(), ctx.Event()
        side = ctx.Process(target=seal_side_listener,
                           args=(broker.host, broker.port, len(frames), 0, ready, out, args.idle_s))
        side.start()
        ready.wait(10)
        publish(frames, broker.host, broker.port)
        _, acks, _ = out.get(timeout=900)
        side.join(10)
        # One database: each instance's share from its own counter (SQLite: from its own file).
        committed = [scrape(port).get("navseal_records_committed_total", 0.0) for port in ports] if store_url else []
        for gateway in gateways:
            stop(gateway)
    times = list(acks.values())
    rate = len(times) / max(1e-9, max(times) - min(times)) if times else 0.0
    per_instance = ([int(n) // args.records for n in committed] if store_url
                    else [count_records(db) // args.records for db in dbs])
    return {"instances": instances, "acked": len(times), "frames": len(frames),
            "frames_per_s": rate, "frames_per_instance": per_instance}


def phase_scaling_postgresql(work: Path, args) -> dict:
    """Phase C with every instance on one PostgreSQL database (a fresh schema per instance count)."""
    import shutil

    from navseal.pg_cluster import start_private_cluster

    cluster = start_private_cluster()
    try:
        one = phase_scaling(work, args, 1, cluster.database("c1"))
        two = phase_scaling(work, args, 2, cluster.database("c2"))
    finally:
        cluster.stop("immediate")
        shutil.rmtree(cluster.root, ignore_errors=True)
    ratio = two["frames_per_s"] / max(1e-9, one["frames_per_s"])
    print(f"C'. shared subscription, one PostgreSQL: 1 instance {one['frames_per_s']:.0f} frames/s, 2 instances "
          f"{two['frames_per_s']:.0f} frames/s (split {two['frames_per_instance']}): scaling ratio {ratio:.2f}")
    return {"one": one, "two": two, "ratio": ratio}


def phase_throughput_postgresql(work: Path, args) -> dict:
    """Phase A again, the gateway on PostgreSQL (same frames, same machine, its own bare subscriber)."""
    import shutil

    cluster = None
    url = args.store_url
    if not url:
        from navseal.pg_cluster import start_private_cluster

        cluster = start_private_cluster()
        url = cluster.database("bench-a")
    try:
        a = phase_throughput(work, args, url, "a-pg")
    finally:
        if cluster is not None:
            cluster.stop("immediate")
            shutil.rmtree(cluster.root, ignore_errors=True)
    print("A'. the same on PostgreSQL" + (" (private cluster: fsync off)" if cluster else ""))
    print(f"   bare subscriber     {a['bare_rate']:10.0f} msgs/s   ({a['bare_msgs']} messages)")
    print(f"   gateway (committed) {a['gateway_frames_per_s']:10.0f} frames/s = "
          f"{a['gateway_records_per_s']:.0f} records/s   ({a['acked_frames']} ACKs)")
    print(f"   ratio gateway/bare  {a['ratio'] * 100:9.1f} %")
    print(f"   records in store    {a['records_in_store']} of {a['records_expected']}"
          f"   (mean {a['mean_batch_frames']:.1f} frames per transaction)")
    return a


def cpu_ratio(figures: dict) -> float:
    """Bare subscriber's CPU per message over the consumer's per frame: the rate ratio both would
    reach, each on a core of its own, CPU-bound."""
    return figures["bare_cpu_us_per_msg"] / max(1e-9, figures["gateway_cpu_us_per_frame"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seals", type=int, default=200)
    parser.add_argument("--frames", type=int, default=25, help="RECORDS frames per seal (throughput)")
    parser.add_argument("--records", type=int, default=60, help="records per frame")
    parser.add_argument("--alarms", type=int, default=20, help="alarm seals in the latency phase")
    parser.add_argument("--latency-s", type=float, default=10.0, help="duration of the paced latency run")
    parser.add_argument("--latency-load", type=float, default=0.5, help="paced rate as a fraction of phase A")
    parser.add_argument("--synchronous", default="FULL", choices=("NORMAL", "FULL"), help="SQLite synchronous")
    parser.add_argument("--no-scaling", action="store_true")
    parser.add_argument("--no-ceiling", action="store_true", help="skip phase A0 (the MQTT half alone)")
    parser.add_argument("--idle-s", type=float, default=15.0, help="give up after this long without traffic")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object too")
    parser.add_argument("--postgresql", action="store_true",
                        help="also run phase A with the gateway on PostgreSQL (a private cluster started for the "
                             "run: Debian's postgresql binaries; or the server of --store-url)")
    parser.add_argument("--store-url", help="postgresql:// URL of a database the bench may fill (with --postgresql)")
    parser.add_argument("--postgresql-scaling", action="store_true",
                        help="phase C on PostgreSQL: one instance, then two sharing one database (a private cluster)")
    args = parser.parse_args(argv)

    SealFrames(1).self_check()
    figures: dict = {"cpus": os.cpu_count(), "synchronous": args.synchronous}
    with tempfile.TemporaryDirectory(prefix="navseal-bench-") as tmp:
        work = Path(tmp)
        a = phase_throughput(work, args)
        figures["throughput"] = a
        print(f"A. throughput ({a['frames']} frames x {a['records_per_frame']} records, {args.seals} seals, "
              f"{os.cpu_count()} CPUs, synchronous={args.synchronous})")
        print(f"   publisher           {a['publish_rate']:10.0f} frames/s")
        print(f"   bare subscriber     {a['bare_rate']:10.0f} msgs/s   ({a['bare_msgs']} messages)")
        print(f"   gateway (committed) {a['gateway_frames_per_s']:10.0f} frames/s = "
              f"{a['gateway_records_per_s']:.0f} records/s   ({a['acked_frames']} ACKs)")
        print(f"   ratio gateway/bare  {a['ratio'] * 100:9.1f} %")
        print(f"   CPU per message     bare {a['bare_cpu_us_per_msg']:.0f} us, gateway "
              f"{a['gateway_cpu_us_per_frame']:.0f} us per frame (all its threads): bare/gateway "
              f"{cpu_ratio(a) * 100:.1f} %")
        print(f"   records in store    {a['records_in_store']} of {a['records_expected']}"
              f"   (mean {a['mean_batch_frames']:.1f} frames per transaction)")
        if args.postgresql:
            figures["throughput_postgresql"] = phase_throughput_postgresql(work, args)
        alone = phase_pipeline_alone(work, args)
        figures["pipeline_alone_frames_per_s"] = alone
        print(f"   pipeline alone      {alone:10.0f} frames/s in-process, no I/O "
              f"(gateway reaches {a['gateway_frames_per_s'] / alone * 100:.0f} % of it)")
        if not args.no_ceiling:
            c = phase_throughput(work, args, name="a-ceiling", ceiling=True)
            figures["mqtt_ceiling"] = c
            print(f"A0. MQTT half alone (driver + runner, the store replaced by decode + authenticate + ACK)")
            print(f"   bare subscriber     {c['bare_rate']:10.0f} msgs/s   ({c['bare_msgs']} messages)")
            print(f"   MQTT half (ACKed)   {c['gateway_frames_per_s']:10.0f} frames/s   ({c['acked_frames']} ACKs)")
            print(f"   ratio half/bare     {c['ratio'] * 100:9.1f} %   (the most the gateway reaches here "
                  f"whatever the store costs)")
            print(f"   CPU per message     bare {c['bare_cpu_us_per_msg']:.0f} us, MQTT half "
                  f"{c['gateway_cpu_us_per_frame']:.0f} us per frame: bare/half {cpu_ratio(c) * 100:.1f} %")
        b = phase_latency(work, args, a["gateway_frames_per_s"])
        figures["latency"] = b
        print(f"B. latency at {b['rate']:.0f} frames/s ({b['acked']}/{b['frames']} ACKed)")
        print(f"   publish -> commit (ACK at seal)  p50 {b['commit_p50_ms']:.1f} ms  p99 {b['commit_p99_ms']:.1f} ms")
        print(f"   alarm publish -> MQTT sink       p50 {b['alarm_p50_ms']:.1f} ms  p99 {b['alarm_p99_ms']:.1f} ms"
              f"  max {b['alarm_max_ms']:.1f} ms ({b['alarms_delivered']}/{b['alarms']} alarms)")
        if not args.no_scaling:
            one = phase_scaling(work, args, 1)
            two = phase_scaling(work, args, 2)
            figures["scaling"] = {"one": one, "two": two, "ratio": two["frames_per_s"] / max(1e-9, one["frames_per_s"])}
            print(f"C. shared subscription: 1 instance {one['frames_per_s']:.0f} frames/s, 2 instances "
                  f"{two['frames_per_s']:.0f} frames/s (split {two['frames_per_instance']}): "
                  f"scaling ratio {figures['scaling']['ratio']:.2f}")
        if args.postgresql_scaling:
            figures["scaling_postgresql"] = phase_scaling_postgresql(work, args)
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
