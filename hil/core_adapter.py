"""The one place that knows the firmware core's names (navseal_fw.seal.SealCore).

The emulator runner (emu_seal.py) drives a seal only through ``SealDriver``; if the firmware's
API moves, this shim moves with it and nothing else in the bench changes.

SealCore's contract as used here (firmware/navseal_fw/seal.py header):
    core = SealCore(config, hal, send); core.start(now_ms); core.feed_gnss(bytes, now_ms)
    core.poll(now_ms); core.on_downlink(frame, now_ms); core.next_deadline_ms()
"""

from __future__ import annotations

from typing import Callable


class SealDriver:
    """A SealCore plus the bits of bookkeeping the bench wants (status for logs, lock wake-up)."""

    def __init__(self, hal, seal_id: int, key: bytes, send: Callable[[bytes], bool], options: dict) -> None:
        from navseal_fw import seal as seal_mod

        values = {"seal_id": seal_id, "key": key.hex()}
        values.update({k: v for k, v in options.items() if k in seal_mod.DEFAULTS})
        self._mod = seal_mod
        self.cfg = seal_mod.Config(values)
        self.core = seal_mod.SealCore(self.cfg, hal, send)
        self.fw = ".".join(str(x) for x in getattr(seal_mod, "FW_VERSION", (0, 0, 0)))

    def start(self, now_ms: int) -> None:
        self.core.start(now_ms)

    def feed_gnss(self, data: bytes, now_ms: int) -> None:
        self.core.feed_gnss(data, now_ms)

    def downlink(self, frame: bytes, now_ms: int) -> None:
        self.core.on_downlink(frame, now_ms)

    def poll(self, now_ms: int) -> None:
        self.core.poll(now_ms)

    def next_deadline_ms(self) -> int:
        return self.core.next_deadline_ms()

    def link(self, up: bool, now_ms: int) -> None:
        """The modem gained or lost its network (what a board's link layer reports)."""
        self.core.on_link(up, now_ms)

    def lock_changed(self, now_ms: int) -> None:
        """A pin-change interrupt: sample the lock inputs at the next poll, not up to a second
        later: `SealCore.lock_changed` (what the board's pin interrupt does)."""
        self.core.lock_changed(now_ms)

    def lock_settled(self, cable: bool, housing: bool) -> bool:
        """True once the debounced inputs show these levels."""
        lock = self.core.lock
        return bool(lock.cable.closed) == cable and bool(lock.housing.closed) == housing

    @property
    def boot(self) -> int:
        return self.core.boot

    def close(self) -> None:
        self.core.journal.close()

    def status(self) -> dict:
        c = self.core
        j = c.journal
        return {
            "boot": c.boot,
            "seq": c.seq,
            "state": "ACTIVE" if c.escort.state == 1 else "INACTIVE",
            "escort": c.escort.escort_id,
            "alarms": c.alarms(),
            "cable": "closed" if c.lock.cable.closed else "open",
            "housing": "closed" if c.lock.housing.closed else "open",
            "pending": j.pending,
            "stored": j.stored,
            "capacity": j.capacity,
            "thinned": j.thinned,
            "next_rseq": j.next_rseq,
            "fix_time": c.fix_time,
            "gnss_lost": int(c.gnss_lost),
            "rx_ok": c.rx_ok,
            "rx_rejected": c.rx_rejected,
            "rx_replayed": c.rx_replayed,
            "acks_ignored": c.acks_ignored,
            "retransmits": c.retransmits,
        }

    def counters(self) -> tuple:
        """Refusal counters, compared before and after a downlink to log what happened to it."""
        c = self.core
        return (c.rx_ok, dict(c.rx_errors), c.rx_not_mine, c.rx_replayed, c.rx_rejected, c.acks_ignored)
