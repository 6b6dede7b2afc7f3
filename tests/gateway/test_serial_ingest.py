"""Serial ingest over real pseudo-terminals: COBS framing both ways, noise, unplug and reopen.

The gateway side opens the pty's slave through a symlink (as udev gives /dev/serial/by-id/...);
"unplugging" closes the master and points the symlink at a new pty.
"""

from __future__ import annotations

import os
import queue
import select
import threading
import time
import tty

import pytest

from navseal.gateway.serial_ingest import SerialPortReader
from navseal.protocol import decode_frame, encode_frame
from navseal.protocol import test_key as key_for
from navseal.protocol.serial import SerialDeframer, encode_serial

SEAL = 4242
KEY = key_for(SEAL)


def hello(seq: int) -> bytes:
    payload = {
        "fw_major": 1, "fw_minor": 0, "fw_patch": 0, "reset_cause": "POWER_ON",
        "config_hash": 0, "journal_pending": seq,
    }
    return encode_frame("HELLO", seal_id=SEAL, boot=1, seq=seq, time=1764115200, payload=payload, key=KEY)


class FakePty:
    """The seal's end: a pty master, reachable by the gateway through a stable symlink."""

    def __init__(self, link: str) -> None:
        self.link = link
        self.plug()

    def plug(self) -> None:
        self.master, slave = os.openpty()
        tty.setraw(slave)
        name = os.ttyname(slave)
        os.close(slave)  # the gateway opens it by name
        tmp = self.link + ".new"
        os.symlink(name, tmp)
        os.replace(tmp, self.link)

    def unplug(self) -> None:
        os.close(self.master)
        self.master = -1

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def read_frames(self, timeout: float, count: int = 1) -> list[bytes]:
        deframer = SerialDeframer()
        frames: list[bytes] = []
        deadline = time.monotonic() + timeout
        while len(frames) < count and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], max(0.0, deadline - time.monotonic()))
            if ready:
                frames += deframer.feed(os.read(self.master, 4096))
        return frames


@pytest.fixture
def seal_pty(tmp_path):
    pty = FakePty(str(tmp_path / "ttySEAL0"))
    yield pty
    if pty.master >= 0:
        os.close(pty.master)


def start_reader(port: str, echo: bool = True):
    got: "queue.Queue[tuple[bytes, str]]" = queue.Queue()

    def submit(frame: bytes, source: str, reply) -> None:
        got.put((frame, source))
        if echo:
            reply(b"ACK:" + frame[:8])  # any bytes: the reader only COBS-frames them

    reader = SerialPortReader(port, submit, backoff_initial_s=0.02, backoff_max_s=0.2)
    reader.start()
    assert reader.connected.wait(5), "reader never opened the port"
    return reader, got


def test_frames_in_and_downlink_back_on_the_same_port(seal_pty):
    reader, got = start_reader(seal_pty.link)
    try:
        # Two frames in one write, a flush delimiter first, and a frame split across writes.
        first, second, third = hello(1), hello(2), hello(3)
        seal_pty.write(b"\x00" + encode_serial(first) + encode_serial(second))
        wire = encode_serial(third)
        seal_pty.write(wire[:10])
        seal_pty.write(wire[10:])
        received = [got.get(timeout=5) for _ in range(3)]
        assert [frame for frame, _ in received] == [first, second, third]
        assert {source for _, source in received} == {f"serial:{seal_pty.link}"}
        assert decode_frame(received[2][0], KEY).payload["journal_pending"] == 3
        replies = seal_pty.read_frames(timeout=5, count=3)
        assert replies == [b"ACK:" + f[:8] for f in (first, second, third)]
        deadline = time.monotonic() + 5  # the counter moves just after the bytes left
        while reader.stats.downlinks < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert reader.stats.downlinks == 3
    finally:
        reader.stop()


def test_noise_costs_at_most_the_frame_it_hits(seal_pty):
    reader, got = start_reader(seal_pty.link, echo=False)
    try:
        good = encode_serial(hello(7))
        damaged = bytearray(encode_serial(hello(8)))
        damaged[5] = 0  # a zero inside the body splits it: two broken pieces, then resync
        seal_pty.write(b"\xff\x13garbage" + bytes(damaged) + good)
        frame, _ = got.get(timeout=5)
        # The broken pieces reach the frame decoder (which refuses them) or the COBS counter; the
        # good frame after them always arrives intact.
        frames = [frame]
        while not got.empty():
            frames.append(got.get_nowait()[0])
        assert hello(7) in frames
        assert reader.stats.frames >= 1
    finally:
        reader.stop()


def test_unplug_then_reopen_with_backoff(seal_pty):
    reader, got = start_reader(seal_pty.link)
    try:
        seal_pty.write(encode_serial(hello(1)))
        assert got.get(timeout=5)[0] == hello(1)
        opens_before = reader.stats.opens

        seal_pty.unplug()
        deadline = time.monotonic() + 5
        while reader.connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not reader.connected.is_set(), "reader did not notice the unplug"
        assert reader.write_frame(b"lost") is False  # downlink while unplugged: dropped, counted
        assert reader.stats.downlinks_dropped >= 1

        seal_pty.plug()
        assert reader.connected.wait(5), "reader did not reopen the port"
        assert reader.stats.opens == opens_before + 1
        seal_pty.write(encode_serial(hello(2)))
        assert got.get(timeout=5)[0] == hello(2)
        assert seal_pty.read_frames(timeout=5) == [b"ACK:" + hello(2)[:8]]
    finally:
        reader.stop()


def test_gateway_service_over_serial_acks_on_the_port_the_seal_spoke_on(tmp_path, seal_pty):
    """The whole service with a serial port and no MQTT: frame in over the pty, ACK back on it,
    the command for the seal follows on the same port, records committed."""
    import dataclasses

    from navseal.bench.seal_frames import SealFrames
    from navseal.gateway.config import SerialConfig, load_config
    from navseal.gateway.service import GatewayService

    config = load_config(None, db_path=str(tmp_path / "gw.sqlite3"), http_port=0, mqtt_host="")
    config = dataclasses.replace(config, serial=[SerialConfig(port=seal_pty.link)])
    service = GatewayService(config)
    service.start()
    try:
        assert service.serial.readers[0].connected.wait(5)
        seal = SealFrames(SEAL)
        service.pipeline.provision_seal(SEAL, seal.key)
        seal_pty.write(encode_serial(seal.records(5)))
        [ack] = seal_pty.read_frames(timeout=5)
        ack = decode_frame(ack, seal.key)
        assert ack.type == "ACK" and ack.payload["committed_rseq"] == 5
        assert service.store.counts()["records"] == 5

        service.runner.call(lambda p: p.request_activation({
            "seal_id": SEAL, "declaration": "D-1", "vehicle": "V-1", "departure_office_code": "A",
            "departure_office_name": "Almaty", "dest_office_code": "K", "dest_office_name": "Khorgos",
            "period_start": time.time(), "period_end": time.time() + 3600}))
        # The seal was heard just now, so the command goes out at once on its port.
        [activate] = seal_pty.read_frames(timeout=5)
        assert decode_frame(activate, seal.key).type == "ACTIVATE"

        seal_pty.write(b"\x00\x01\x02\x00" + encode_serial(b"NS\x01garbage-frame-body-that-is-long-enough"))
        def refused() -> int:
            return sum(n for (result, _), n in service.pipeline.metrics()["frames"].items() if result == "rejected")

        deadline = time.monotonic() + 5
        while refused() < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert refused() == 1  # counted by reason, nothing crashed
        seal_pty.write(encode_serial(seal.records(1)))
        acks = [decode_frame(f, seal.key) for f in seal_pty.read_frames(timeout=5)]
        assert acks[0].type == "ACK" and acks[0].payload["committed_rseq"] == 6
    finally:
        service.stop()
