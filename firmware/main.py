# main.py: the seal's program on the board. A small asyncio loop around the sans-I/O core:
# it reads the GNSS UART, polls the link, calls SealCore.poll at its deadlines and feeds the
# watchdog. All decisions are in navseal_fw.seal.SealCore; this file only moves bytes and time.
#
#   /data/navseal.json (written by `navseal provision`): the core's keys (seal_id, key,
#   intervals; see seal.DEFAULTS) plus this file's: "link": "mqtt" | "serial",
#   "mqtt_host", "mqtt_port", "mqtt_user", "mqtt_password", "wifi_ssid", "wifi_password", "apn",
#   "bench": true (a BENCH BUILD: also answer the bench-control line of docs/hil.md on the
#   board's bench_ctl_uart(); default false: a production seal never opens that UART).
#
# `run(board, core, link, ...)` is separate from `main()` so the tests can drive the same loop
# with an in-memory board under CPython and under the WebAssembly MicroPython (which has no
# asyncio.run: the test awaits run() itself).
import asyncio
import gc
import json

GNSS_POLL_MS = 100  # 96 bytes at 9600 baud: well inside the UART's 2 KB buffer
MAX_SLEEP_MS = 1000  # the loop wakes at least this often (watchdog, lock sampling)
MIN_SLEEP_MS = 5


def _sleep_ms(ms):
    if hasattr(asyncio, "sleep_ms"):
        return asyncio.sleep_ms(ms)  # type: ignore[attr-defined]
    return asyncio.sleep(ms / 1000)


async def _gnss(board, core, stop):
    while not stop[0]:
        data = board.gnss_read()
        if data:
            core.feed_gnss(data, board.ticks_ms())
        await _sleep_ms(GNSS_POLL_MS)


async def _control(board, core, link, stop):
    while not stop[0]:
        now = board.ticks_ms()
        link.poll(now)
        core.poll(now)
        board.wdt_feed()
        wake = core.next_deadline_ms()
        link_wake = link.next_deadline_ms()
        if wake is None or (link_wake is not None and link_wake < wake):
            wake = link_wake
        wait = MAX_SLEEP_MS if wake is None else wake - board.ticks_ms()
        await _sleep_ms(MIN_SLEEP_MS if wait < MIN_SLEEP_MS else min(wait, MAX_SLEEP_MS))


BENCH_POLL_MS = 20  # control line: 115200 baud fills 1 KB rxbuf in ~90 ms
BENCH_SETTLE_POLL_MS = 5  # while a LOCK reply waits for the debounced inputs


class BenchTarget:
    """What the bench-control handler (navseal_fw.benchctl) may do to this seal: the board's
    input overrides and the core's entry points. No write_cut on a board (a real power cut
    needs a relay), so CUTWRITE is answered "ERR CUTWRITE unsupported"."""

    def __init__(self, board, core):
        self.board = board
        self.core = core
        feats = ["gnss", "lock", "battery", "reboot", "link_state"]
        if core.journal.capacity <= 256:
            feats.append("small_journal")
        self.features = tuple(feats)

    def feed_gnss(self, data, now_ms):
        self.core.feed_gnss(data, now_ms)

    def set_lock(self, cable, housing, now_ms):
        self.board.bench_set_lock(cable, housing)
        self.core.lock_changed(now_ms)  # as the pin-change interrupt would

    def lock_settled(self, cable, housing):
        lock = self.core.lock
        return bool(lock.cable.closed) == cable and bool(lock.housing.closed) == housing

    def set_battery(self, pct):
        self.board.bench_set_battery(pct)

    def set_link(self, up, now_ms):
        self.core.on_link(up, now_ms)

    def cut_write(self, n):
        raise NotImplementedError("no write_cut on a board")

    def status(self):
        c = self.core
        j = c.journal
        return [("boot", c.boot), ("seq", c.seq),
                ("state", "ACTIVE" if c.escort.state == 1 else "INACTIVE"),
                ("alarms", c.alarms()),
                ("cable", "closed" if c.lock.cable.closed else "open"),
                ("housing", "closed" if c.lock.housing.closed else "open"),
                ("pending", j.pending), ("stored", j.stored), ("capacity", j.capacity),
                ("next_rseq", j.next_rseq), ("gnss_lost", int(c.gnss_lost)),
                ("rx_ok", c.rx_ok), ("rx_rejected", c.rx_rejected)]


async def _bench(board, core, uart, stop):
    from navseal_fw import benchctl, seal

    ctl = benchctl.BenchCtl(BenchTarget(board, core))
    fw = "%d.%d.%d" % seal.FW_VERSION
    uart.write(benchctl.log_line("boot: reset cause %d, bench build" % board.reset_cause()))
    uart.write(benchctl.ready_line(core.cfg.seal_id, core.boot, fw))
    while not stop[0]:
        data = uart.read()
        now = board.ticks_ms()
        out = ctl.feed(data, now) if data else []
        if ctl.busy():
            # A LOCK is waiting for the debounce: the control task may be asleep for up to
            # MAX_SLEEP_MS, so sample the inputs from here (poll is safe at any time).
            core.poll(now)
        out += ctl.poll(now)
        for line in out:
            uart.write(line)
        if ctl.reboot_requested:
            board.reboot()  # on a board this does not return
            return
        await _sleep_ms(BENCH_SETTLE_POLL_MS if ctl.busy() else BENCH_POLL_MS)


async def run(board, core, link, duration_ms=None, bench_uart=None):
    """Start the core and run the loop; forever, or for duration_ms (tests). bench_uart: the
    bench-control line (bench builds only, see bench_uart_for())."""
    stop = [False]
    core.start(board.ticks_ms())
    tasks = [asyncio.create_task(_gnss(board, core, stop)),
             asyncio.create_task(_control(board, core, link, stop))]
    if bench_uart is not None:
        tasks.append(asyncio.create_task(_bench(board, core, bench_uart, stop)))
    if duration_ms is None:
        await asyncio.gather(*tasks)
        return
    await _sleep_ms(duration_ms)
    stop[0] = True
    await asyncio.gather(*tasks)


def _settings(board):
    f = board.open("navseal.json", "rb")
    try:
        return json.loads(f.read())
    finally:
        f.close()


def bench_uart_for(board):
    """The bench-control UART if navseal.json enables it ("bench": true), else None. Refused
    (None, with a message) when the LTE modem is in use: the control line shares its UART."""
    settings = _settings(board)
    if settings.get("bench", False) is not True:
        return None
    if settings.get("link", "mqtt") != "serial" and not settings.get("wifi_ssid"):
        print("bench: ignored, the control line needs the modem's UART (use link serial or Wi-Fi)")
        return None
    return board.bench_ctl_uart()


def build(board):
    """Board -> (core, link) from the provisioned settings."""
    from navseal_fw.seal import Config, SealCore

    settings = _settings(board)
    cfg = Config.load(board)
    box = []  # type: list  # the core, once built (the link's callbacks need it first)

    def on_frame(frame):
        box[0].on_downlink(frame, board.ticks_ms())

    def on_state(up):
        box[0].on_link(up, board.ticks_ms())

    if settings.get("link", "mqtt") == "serial":
        from navseal_fw.cobs import SerialLink

        serial = SerialLink(board.bench_uart(), on_frame)
        box.append(SealCore(cfg, board, lambda frame: serial.send(frame, board.ticks_ms())))
        return box[0], serial
    from navseal_fw.link_mqtt import MqttLink, tcp_connector

    board.network_up(settings.get("wifi_ssid"), settings.get("wifi_password"), settings.get("apn"))
    mqtt = MqttLink(cfg.seal_id, tcp_connector(settings.get("mqtt_host", "127.0.0.1"),
                                               settings.get("mqtt_port", 1883)),
                    on_frame, on_state,
                    # The production broker refuses anonymous clients; its ACL keys on this login.
                    user=settings.get("mqtt_user"), password=settings.get("mqtt_password"))
    box.append(SealCore(cfg, board, lambda frame: mqtt.send(frame, board.ticks_ms())))
    return box[0], mqtt


def main():
    from navseal_fw.board_esp32 import Board

    board = Board()
    board.wdt_start()
    core, link = build(board)
    bench_uart = bench_uart_for(board)
    gc.collect()
    asyncio.run(run(board, core, link, bench_uart=bench_uart))


if __name__ == "__main__":
    main()
