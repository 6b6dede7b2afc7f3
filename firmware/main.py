# main.py: the seal's program on the board. A small asyncio loop around the sans-I/O core:
# it reads the GNSS UART, polls the link, calls SealCore.poll at its deadlines and feeds the
# watchdog. All decisions are in navseal_fw.seal.SealCore; this file only moves bytes and time.
#
#   /data/navseal.json (written by `navseal provision`): the core's keys (seal_id, key,
#   intervals; see seal.DEFAULTS) plus this file's: "link": "mqtt" | "serial",
#   "mqtt_host", "mqtt_port", "mqtt_user", "mqtt_password", "wifi_ssid", "wifi_password", "apn".
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


async def run(board, core, link, duration_ms=None):
    """Start the core and run the loop; forever, or for duration_ms (tests)."""
    stop = [False]
    core.start(board.ticks_ms())
    tasks = [asyncio.create_task(_gnss(board, core, stop)),
             asyncio.create_task(_control(board, core, link, stop))]
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
    gc.collect()
    asyncio.run(run(board, core, link))


if __name__ == "__main__":
    main()
