# A fault that ends the seal's program (MemoryError, any exception out of the loop) is written
# to flash before the safe reboot, and reported by the next boot: HELLO's reset_cause is the
# board's (SOFT after machine.reset()), and the REBOOT event's value carries the fault in bits
# 8-15 above the reset cause (bits 0-7), so the journal keeps it as evidence.
#
#   fault.record(hal, fault.code_of(exc))   # before the reset; never raises
#   fault.take(hal) -> code or 0            # at boot: read and clear
from navseal_fw.persist import Counter

NONE = 0
MEMORY = 1  # MemoryError
EXCEPTION = 2  # any other exception that left the loop
_FILE = "fault"


def code_of(exc):
    return MEMORY if isinstance(exc, MemoryError) else EXCEPTION


def record(hal, code):
    try:
        Counter(hal, _FILE).save(code)
        return True
    except Exception:  # noqa: BLE001 - the reboot must happen whatever the flash says
        return False


def take(hal):
    c = Counter(hal, _FILE)
    try:
        code = c.load()
        if code:
            c.save(NONE)
    except OSError:
        return NONE
    return code & 0xFF
