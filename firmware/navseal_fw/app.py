# app.py: the seal's program (main.py, run at every reset, only starts it: as bytecode flashed
# with the rest of navseal_fw it costs no compilation, whose parse tree a board's heap would
# otherwise hold at every boot). A small asyncio loop around the sans-I/O core:
# it reads the GNSS UART, runs the link as its own task, hands downlinks to the core, calls
# SealCore.poll at its deadlines and feeds the watchdog. All decisions are in
# navseal_fw.seal.SealCore; this file only moves bytes and time. Nothing here blocks: the link
# (navseal_fw.link_mqtt, cobs.SerialLink) is coroutines with measured timeouts, and a downlink
# reaches the core from this loop's own task, never from inside the link's I/O.
#
#   /data/navseal.json (written by `navseal provision`): the core's keys (seal_id, key,
#   intervals; see seal.DEFAULTS) plus this file's: "link": "mqtt" | "serial",
#   "mqtt_host", "mqtt_port" (default 8883 with TLS, else 1883), "mqtt_user", "mqtt_password",
#   "mqtt_tls": true (verify the broker against the CA in "mqtt_ca", default "ca.der", DER, on
#   flash; "mqtt_server_name" if the certificate names the broker differently from mqtt_host),
#   "mqtt_keepalive_s", "mqtt_backoff_cap_s", "wifi_ssid", "wifi_password", "apn",
#   "bench": true (a BENCH BUILD: also answer the bench-control line of docs/hil.md on the
#   board's bench_ctl_uart(); default false: a production seal never opens that UART).
#
# Faults: any exception out of the loop or a callback (MemoryError above all) is written to
# flash (navseal_fw.fault) and answered with a reboot: never a silent stop. The next boot's
# REBOOT event carries it.
#
# `run(board, core, link, ...)` is separate from `main()` so the tests can drive the same loop
# with an in-memory board under CPython and under the WebAssembly MicroPython (which has no
# asyncio.run: the test awaits run() itself). The board is the ESP32's (board_esp32) on a
# board and the desktop one (board_desktop) on the unix port.
import asyncio
import gc
import json

from navseal_fw.aio import new_flag, sleep_ms, ticks_diff, ticks_ms, wait_flag
from navseal_fw.loopstats import LoopStats

GNSS_POLL_MS = 100  # 96 bytes at 9600 baud: well inside the UART's 2 KB buffer
MAX_SLEEP_MS = 1000  # the loop wakes at least this often (watchdog, lock sampling)
MIN_SLEEP_MS = 5


class _Stop:
    def __init__(self):
        self.done = False
        self.fault = None
        self.event = asyncio.Event()

    def fail(self, exc):
        if self.fault is None:
            self.fault = exc
        self.done = True
        self.event.set()


async def _guard(stop, aw):
    # Every task of the loop runs under this: an exception (MemoryError too) stops the loop
    # and reaches main(), which records it and reboots; a task never dies alone.
    try:
        await aw
    except Exception as e:  # noqa: BLE001 - any fault ends in a reboot, see main()
        stop.fail(e)


async def _nap(stats, ms):
    t0 = ticks_ms()
    await sleep_ms(ms)
    stats.lag(ticks_diff(ticks_ms(), t0) - ms)


async def _gnss(board, core, stop, stats):
    while not stop.done:
        t0 = ticks_ms()
        data = board.gnss_read()
        if data:
            core.feed_gnss(data, board.ticks_ms())
        stats.busy(ticks_diff(ticks_ms(), t0), "gnss")
        await _nap(stats, GNSS_POLL_MS)


async def _control(board, core, stop, stats, wake):
    while not stop.done:
        t0 = ticks_ms()
        now = board.ticks_ms()
        core.poll(now)
        board.wdt_feed()
        t1 = ticks_ms()
        stats.busy(ticks_diff(t1, t0), "poll")
        stats.sample_heap()
        stats.busy(ticks_diff(ticks_ms(), t1), "gc")
        wake_at = core.next_deadline_ms()
        wait = MAX_SLEEP_MS if wake_at is None else wake_at - board.ticks_ms()
        wake.napping = True
        try:
            await _nap(stats, MIN_SLEEP_MS if wait < MIN_SLEEP_MS else min(wait, MAX_SLEEP_MS))
        except asyncio.CancelledError:
            if stop.done:
                raise
            # _lock_wake cut the nap short: a lock input moved, sample it now. (CPython counts
            # cancellations per task, which later timeouts read: this one is handled.)
            if hasattr(wake.task, "uncancel"):
                wake.task.uncancel()
        wake.napping = False


class _Wake:
    def __init__(self):
        self.napping = False
        self.task = None  # the control task, once created


async def _lock_wake(board, core, flag, stop, wake):
    # The board's pin interrupts set `flag` (an asyncio.ThreadSafeFlag) on every lock edge: the
    # control task, asleep up to MAX_SLEEP_MS, is woken at once to read the interrupt latch and
    # sample the inputs (by cancelling its nap: nothing allocated while no edge comes).
    while not stop.done:
        await wait_flag(flag)
        core.lock_changed(board.ticks_ms())
        if wake.napping and wake.task is not None:
            wake.napping = False
            wake.task.cancel()


async def _downlinks(board, link, stop, stats):
    # Downlinks and link state changes reach the core here, in the loop's own task, after the
    # link has finished reading them: never inside a publish, never re-entering the link.
    while not stop.done:
        await link.ready.wait()
        t0 = ticks_ms()
        link.poll(board.ticks_ms())
        stats.busy(ticks_diff(ticks_ms(), t0), "downlink")


def status_pairs(core):
    """The seal's own view as (key, value) pairs: bench STATUS and the desktop's control line."""
    c = core
    j = c.journal
    return [("boot", c.boot), ("seq", c.seq),
            ("state", "ACTIVE" if c.escort.state == 1 else "INACTIVE"),
            ("alarms", c.alarms()),
            ("cable", "closed" if c.lock.cable.closed else "open"),
            ("housing", "closed" if c.lock.housing.closed else "open"),
            ("pending", j.pending), ("stored", j.stored), ("capacity", j.capacity),
            ("next_rseq", j.next_rseq), ("gnss_lost", int(c.gnss_lost)),
            ("rx_ok", c.rx_ok), ("rx_rejected", c.rx_rejected)]


async def run(board, core, link, duration_ms=None, bench_uart=None, stats=None):
    """Start the core and run the loop; forever, or for duration_ms (tests). bench_uart: the
    bench-control line (bench builds only, see bench_uart_for()). Returns the LoopStats; raises
    whatever stopped the loop (main() turns that into a recorded fault and a reboot)."""
    stop = _Stop()
    if stats is None:
        stats = LoopStats()
    core.start(board.ticks_ms())
    stats.heap_base = stats.sample_heap(force=True)
    wake = _Wake()
    coros = [_control(board, core, stop, stats, wake), _gnss(board, core, stop, stats),
             _downlinks(board, link, stop, stats), link.run()]
    if getattr(board, "lock_flag", 0) is None:  # the board wakes the loop on a lock edge
        board.lock_flag = new_flag()
        coros.append(_lock_wake(board, core, board.lock_flag, stop, wake))
    if bench_uart is not None:
        from navseal_fw.benchctl import serve  # bench builds only: not in a production heap

        coros.append(serve(board, core, bench_uart, stop))
    service = getattr(board, "service", None)  # a board's own task (the desktop's control line)
    if service is not None:
        coros.append(service(stats, lambda: status_pairs(core)))
    tasks = [asyncio.create_task(_guard(stop, c)) for c in coros]
    wake.task = tasks[0]
    if duration_ms is None:
        await stop.event.wait()
    else:
        # Polled, not wait_for: the WebAssembly port cannot wake its top-level coroutine early
        # through a cancellation, which is how wait_for returns before its timeout.
        t0 = ticks_ms()
        while not stop.done and ticks_diff(ticks_ms(), t0) < duration_ms:
            await sleep_ms(MIN_SLEEP_MS * 4)
    stop.done = True
    link.close()
    for t in tasks:
        t.cancel()
    await sleep_ms(MIN_SLEEP_MS)  # let the cancellations land
    if stop.fault is not None:
        raise stop.fault
    return stats


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


def build(board, stats=None):
    """Board -> (core, link) from the provisioned settings. stats: a LoopStats that learns the
    heap once the modules are in."""
    from navseal_fw.seal import Config, SealCore

    settings = _settings(board)
    if stats is not None:
        if settings.get("link", "mqtt") == "serial":
            from navseal_fw import cobs  # noqa: F401  # counted with the other modules
        else:
            from navseal_fw import link_mqtt  # noqa: F401
        stats.heap_modules = stats.sample_heap(force=True)
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
    from navseal_fw.link_mqtt import MqttLink, tcp_opener

    board.network_up(settings.get("wifi_ssid"), settings.get("wifi_password"), settings.get("apn"))
    ssl_ctx = tls_context(board, settings) if settings.get("mqtt_tls") else None
    host = settings.get("mqtt_host", "127.0.0.1")
    port = settings.get("mqtt_port", 8883 if ssl_ctx is not None else 1883)
    mqtt = MqttLink(cfg.seal_id,
                    tcp_opener(host, port, ssl=ssl_ctx,
                               server_hostname=settings.get("mqtt_server_name")),
                    on_frame, on_state,
                    keepalive_s=settings.get("mqtt_keepalive_s", 60),
                    backoff_cap_ms=settings.get("mqtt_backoff_cap_s", 120) * 1000,
                    # The production broker refuses anonymous clients; its ACL keys on this login.
                    user=settings.get("mqtt_user"), password=settings.get("mqtt_password"))
    box.append(SealCore(cfg, board, lambda frame: mqtt.send(frame, board.ticks_ms())))
    return box[0], mqtt


def tls_context(board, settings):
    """TLS client context: the broker's certificate must chain to the CA on the seal's flash
    (DER, which is what MicroPython's cadata takes) and name the broker."""
    import ssl

    f = board.open(settings.get("mqtt_ca", "ca.der"), "rb")
    try:
        ca = f.read()
    finally:
        f.close()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED  # type: ignore[attr-defined]  # the stubs lack it
    ctx.load_verify_locations(cadata=ca)
    return ctx


def make_board():
    """The ESP32 board on a board; the desktop board on the unix port (sys.platform linux or
    darwin), whose flash is the directory $NAVSEAL_FLASH (see board_desktop)."""
    import sys

    if sys.platform in ("linux", "darwin"):
        from navseal_fw.board_desktop import Board
    else:
        from navseal_fw.board_esp32 import Board  # type: ignore[assignment]
    return Board()


def fault_reboot(board, exc):
    """The loop stopped on `exc`: record it on flash, say so, reboot (never a silent stop)."""
    from navseal_fw import fault

    code = fault.code_of(exc)
    gc.collect()  # whatever the failed step held is garbage now: room to write the record
    fault.record(board, code)
    try:
        import sys

        print("fault %d: reboot after" % code)
        if hasattr(sys, "print_exception"):
            sys.print_exception(exc)  # type: ignore[attr-defined]
        else:
            import traceback  # type: ignore[import-not-found]  # CPython only

            traceback.print_exception(exc)
    except Exception:  # noqa: BLE001 - printing may fail for the same reason (no memory)
        pass
    board.reboot()


def main():
    from navseal_fw import fault

    board = make_board()
    try:
        board.wdt_start()
        board.fault = fault.take(board)  # the last program's fault, for HELLO and REBOOT
        stats = LoopStats()
        core, link = build(board, stats)
        bench_uart = bench_uart_for(board)
        gc.collect()
        asyncio.run(run(board, core, link, bench_uart=bench_uart, stats=stats))
    except Exception as e:  # noqa: BLE001 - MemoryError included: record, reboot
        fault_reboot(board, e)

