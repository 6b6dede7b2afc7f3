"""The firmware's heap on MicroPython's unix port (64-bit), per build kind, and what happens when
it does not fit: a MemoryError is recorded on flash and answered with a reboot, and the next boot
journals it (REBOOT event value: reset cause | fault << 8). The full escort at 176K with .mpy is
test_board_path.py; docs/firmware.md has the table these figures go into."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from board_bench import Control, GnssFeed, write_wiring  # noqa: E402
from mp_unix import require_unix, run_unix  # noqa: E402

from navseal.desktop_seal import REBOOT_EXIT, DesktopSeal, build_image  # noqa: E402
from navseal_fw import codec as C  # noqa: E402
from navseal_fw import fault  # noqa: E402
from navseal_fw import journal as J  # noqa: E402
from navseal_fw.hal_desktop import DesktopHal  # noqa: E402

# What main.py imports on the board path (MQTT link, TLS, the desktop board), then the heap.
IMPORTS = (
    "import gc\n"
    "gc.collect()\n"
    "a0 = gc.mem_alloc()\n"
    "import asyncio, ssl, json\n"
    "gc.collect()\n"
    "a1 = gc.mem_alloc()\n"
    "import navseal_fw.seal, navseal_fw.link_mqtt, navseal_fw.fault, navseal_fw.board_desktop\n"
    "peak = gc.mem_alloc()\n"
    "gc.collect()\n"
    "a2 = gc.mem_alloc()\n"
    "print('HEAP', a1 - a0, a2 - a1, peak - a1)\n"
)


MPY_RESIDENT_MAX = 105_000


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    require_unix()
    root = tmp_path_factory.mktemp("images")
    return {kind: build_image(root / kind, kind) for kind in ("py", "mpy")}


@pytest.mark.micropython
def test_module_heap_per_build_kind(images):
    figures = {}
    for kind, image in images.items():
        res = run_unix(IMPORTS, paths=[image / "lib"], heapsize="2M", cwd=image)
        assert res.returncode == 0, res.stdout + res.stderr
        _, stdlib, resident, transient = res.stdout.split()
        figures[kind] = {"stdlib": int(stdlib), "resident": int(resident), "transient_peak": int(transient)}
    print(f"\nBOARD_MEMORY modules {json.dumps(figures)} (64-bit unix port)")
    # Bytecode does not need the compiler: both its resident cost and its import peak are lower.
    # The board path's modules as bytecode: 103,424 B measured (107,488 B before the peer's half
    # of the codec moved to codec_peer); past the bound, the 176K escort loses its margin.
    assert figures["mpy"]["resident"] < MPY_RESIDENT_MAX, figures
    assert figures["mpy"]["resident"] < figures["py"]["resident"]
    assert figures["mpy"]["transient_peak"] < figures["py"]["transient_peak"]


def _provision(flash: Path) -> None:
    from navseal.cli import main as cli_main

    key = flash.parent / "seal.key"
    key.write_text("7e" * 32)
    # A broker nobody listens on: the link keeps retrying, which is all this test needs.
    assert cli_main(["provision", "--seal", "1001", "--key-file", str(key), "--no-tls",
                     "--no-register", "--broker-host", "127.0.0.1", "--broker-port", "9",
                     "--flash-dir", str(flash)]) == 0


def _first_event(flash: Path) -> tuple[int, int]:
    j = J.Journal(DesktopHal(str(flash)))
    j.recover()
    assert j.peek(10) == J.KIND_EVENT
    return j.ev_code, j.ev_value


@pytest.mark.micropython
@pytest.mark.slow
def test_firmware_that_does_not_fit_reboots_with_a_fault_and_the_next_boot_journals_it(images, tmp_path):
    flash = tmp_path / "flash"
    _provision(flash)
    gnss, control = GnssFeed().start(), Control()
    write_wiring(flash, gnss, control)
    try:
        # Source modules at 176K: the compiler's peak does not fit. Not a silent stop: the
        # fault is written and the board resets (exit 75 = reboot on the desktop board).
        py = DesktopSeal(images["py"], flash, heapsize="176K", log_path=tmp_path / "py.log")
        res = subprocess.run(py.command(), env=py._env(), cwd=images["py"], capture_output=True,
                             text=True, timeout=60)
        assert res.returncode == REBOOT_EXIT, res.stdout + res.stderr
        assert "MemoryError" in res.stdout and "fault 1: reboot" in res.stdout
        assert (flash / "fault").exists() and (flash / ".reset").read_text() == "2"
        # The same flash with bytecode (and the board-path budget): it boots, and journals what
        # happened.
        seal = DesktopSeal(images["mpy"], flash, heapsize="176K", log_path=tmp_path / "mpy.log").start()
        try:
            assert control.server.wait_client(2, 30), seal.log()  # the first was the .py run
            deadline = time.monotonic() + 20
            status = ""
            while time.monotonic() < deadline and "OK STATUS" not in status:
                status = control.ask("STATUS")
            assert "boot=1 " in status, status
        finally:
            seal.stop()
    finally:
        gnss.stop()
        control.close()
    code, value = _first_event(flash)
    assert code == C.EV_REBOOT
    assert value == C.RESET_SOFT | 1 << 8, hex(value)  # SOFT reset after a MemoryError fault
    assert fault.take(DesktopHal(str(flash))) == fault.NONE  # the boot took (and cleared) it


@pytest.mark.parametrize("port", ["esp32", "unix"])
def test_freeze_manifest_lists_the_board_modules(tmp_path, port):
    from navseal.cli import main as cli_main
    from navseal.cmd_flash import DESKTOP_ONLY, firmware_root

    out = tmp_path / "manifest.py"
    assert cli_main(["flash", "--manifest", str(out), "--manifest-port", port]) == 0
    calls = []
    exec(out.read_text(), {"include": lambda p: calls.append(("include", p)),
                           "package": lambda name, files, base_path: calls.append((name, files, base_path))})
    assert calls[0] == ("include", "$(PORT_DIR)/boards/manifest.py" if port == "esp32"
                        else "$(PORT_DIR)/variants/manifest.py")
    name, files, base = calls[1]
    root = firmware_root()
    assert name == "navseal_fw" and Path(base) == root
    expected = {p.name for p in (root / "navseal_fw").glob("*.py")}
    if port == "esp32":
        expected -= DESKTOP_ONLY
    assert set(files) == expected
