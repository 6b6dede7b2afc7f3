# Fakes of MicroPython's `machine` and `time` for exercising board_esp32.Board off the board,
# under CPython and the WebAssembly MicroPython alike. Plain attribute bags; the test drives
# pin levels, UART bytes, ADC microvolts and the tick counter.
import time as _time


class Pin:
    IN = 1
    OUT = 3
    PULL_UP = 2
    IRQ_FALLING = 1
    IRQ_RISING = 2

    def __init__(self, pin, mode=-1, pull=-1, value=None):
        self.pin = pin
        self.mode = mode
        self.pull = pull
        self.level = 1 if pull == Pin.PULL_UP else 0
        if value is not None:
            self.level = value

    def value(self, v=None):
        if v is None:
            return self.level
        self.level = v

    def irq(self, handler=None, trigger=3, hard=False):
        self.handler = handler
        self.trigger = trigger
        self.hard = hard

    def edge(self, level):
        # the wire changes: the level, then the interrupt (as the hardware does)
        self.level = level
        if getattr(self, "handler", None) is not None:
            self.handler(self)


class UART:
    def __init__(self, uid, baudrate=9600, tx=None, rx=None, rxbuf=256, timeout=0):
        self.uid = uid
        self.baudrate = baudrate
        self.tx = tx
        self.rx = rx
        self.inbox = bytearray()
        self.outbox = bytearray()

    def any(self):
        return len(self.inbox)

    def read(self, n=-1):
        if not self.inbox:
            return None
        out = bytes(self.inbox)
        self.inbox = bytearray()
        return out

    def write(self, b):
        self.outbox.extend(b)
        return len(b)


class ADC:
    ATTN_11DB = 3

    def __init__(self, pin, atten=0):
        self.pin = pin
        self.uv = 1900000

    def read_uv(self):
        return self.uv


class RTC:
    def __init__(self):
        self.set_to = None
        self.sub_us = 0

    def datetime(self, t=None):
        if t is None:
            return (2025, 11, 26, 2, 0, 0, 0, self.sub_us)
        self.set_to = t


class WDT:
    def __init__(self, timeout=5000):
        self.timeout = timeout
        self.fed = 0

    def feed(self):
        self.fed += 1


class Machine:
    PWRON_RESET = 1
    HARD_RESET = 2
    WDT_RESET = 3
    DEEPSLEEP_RESET = 4
    SOFT_RESET = 5
    Pin = Pin
    UART = UART
    ADC = ADC
    RTC = RTC
    WDT = WDT

    def __init__(self, cause=3):
        self.cause = cause
        self.irq_off = 0

    def reset_cause(self):
        return self.cause

    def disable_irq(self):
        self.irq_off += 1
        return 7

    def enable_irq(self, state):
        assert state == 7
        self.irq_off -= 1


class Time:
    # ticks wrap at 2**30 like the board's; time() on the 1970 epoch
    def __init__(self, ticks=0x40000000 - 1000, unix=1764115200):
        self.ticks = ticks
        self.unix = unix

    def ticks_ms(self):
        return self.ticks

    def ticks_diff(self, a, b):
        return ((a - b + 0x20000000) & 0x3FFFFFFF) - 0x20000000

    def ticks_add(self, a, b):
        return (a + b) & 0x3FFFFFFF

    def advance(self, ms):
        self.ticks = (self.ticks + ms) & 0x3FFFFFFF

    def time(self):
        return self.unix

    def gmtime(self, t=None):
        return _time.gmtime(t)

    def sleep_ms(self, ms):
        pass
