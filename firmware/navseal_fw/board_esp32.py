"""Board HAL for an ESP32-S3 seal (ESP32-S3-WROOM-1 N16R8 class module), MicroPython >= 1.24.

The same duck-typed interface as hal.MemHal (see hal.py): ticks_ms, unix, unix_at, set_unix,
open, rename, remove, listdir, size, gnss_read, lock_levels, lock_irqs, lock_edges, battery_pct,
reset_cause; plus the board-only parts main.py uses: the watchdog, the serial bench UART and the
network.

Lock inputs: both pins interrupt on both edges (a hard IRQ: the handler runs at the edge, even
while the interpreter waits in a blocking socket call, and allocates nothing). It only updates a
RAM latch of small ints: per input the edge count, the ticks of the first opening edge and of
the last closing edge since the core last read it, the time spent open in openings that also
closed, and the start of an opening in progress. The core reads and clears it at its next poll
(lock_edges), so an opening that starts and ends between two samples is still seen, dated by its
edges. `lock_irqs` counts edges (the core samples at once when it moved); main.py may set
`lock_flag` to an asyncio.ThreadSafeFlag, which the handler sets, to wake its loop at once.

Pin map (docs/firmware.md has the same table and the reasoning):
    GNSS      UART1  TX GPIO17 -> receiver RX, RX GPIO18 <- receiver TX, 9600 8N1
              GPIO8  GNSS power enable (high = on), GPIO9 PPS (not used yet)
    cable     GPIO10 input, pull-up; the loop shorts it to GND: 0 = loop closed
    housing   GPIO11 input, pull-up; normally-closed microswitch to GND: 0 = housing closed
    battery   GPIO1  ADC1 channel 0 through a 100k/100k divider (ADC1: ADC2 is unusable
              while Wi-Fi runs), 11 dB attenuation, read_uv() is factory-calibrated
    modem     UART2  TX GPIO4, RX GPIO5, 115200; GPIO6 PWRKEY (LTE Cat-1, e.g. SIMCom A7670E),
              brought up as a PPP interface (network.PPP)
    bench     UART0  TX GPIO43, RX GPIO44 (the USB-serial bridge): COBS frames for HIL tests
    bench ctl UART2  TX GPIO4, RX GPIO5, 115200: the bench-control line (docs/hil.md), only in a
              bench build ("bench": true in navseal.json) and only without the modem (same pins)
    LED       GPIO38 status
Avoided on purpose: GPIO0/3/45/46 (strapping), GPIO19/20 (native USB), GPIO26-37 (flash and
octal PSRAM on R8 modules).

Constructor arguments let a test hand in fakes for `machine`, `os` and `time`, so this file is
exercised under CPython and the WebAssembly MicroPython too (tests/firmware/mp/mpt_board.py).
"""

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):  # type: ignore[no-redef,misc]  # stub's signature is generic
        return x


PIN_GNSS_TX = const(17)
PIN_GNSS_RX = const(18)
PIN_GNSS_EN = const(8)
PIN_CABLE = const(10)
PIN_HOUSING = const(11)
PIN_BATTERY = const(1)
PIN_MODEM_TX = const(4)
PIN_MODEM_RX = const(5)
PIN_MODEM_PWRKEY = const(6)
PIN_LED = const(38)
PIN_BENCH_TX = const(43)
PIN_BENCH_RX = const(44)
GNSS_UART = const(1)
MODEM_UART = const(2)
BENCH_UART = const(0)
BENCH_CTL_UART = const(2)  # the modem's UART and pins: a bench build has no modem
PIN_BENCH_CTL_TX = const(4)
PIN_BENCH_CTL_RX = const(5)
GNSS_BAUD = const(9600)
MODEM_BAUD = const(115200)
BENCH_BAUD = const(115200)
BATTERY_DIVIDER = const(2)  # 100k/100k
WDT_TIMEOUT_MS = const(30000)
FLASH_DIR = "/data"  # littlefs; the seal's files live here, flat
_EPOCH_2000 = const(946684800)  # Unix seconds of 2000-01-01, MicroPython's old epoch
_TICKS_PERIOD = const(0x40000000)

# Li-ion open-circuit voltage (mV) to charge (%), piecewise linear. Under load the reading is
# lower, so the battery is sampled between modem transmissions.
_BATTERY_CURVE = ((3300, 0), (3500, 5), (3600, 10), (3700, 25), (3750, 40), (3800, 55),
                  (3850, 65), (3950, 80), (4050, 90), (4200, 100))


def battery_percent(mv):
    """Cell millivolts to 0..100 %, integer maths."""
    if mv <= _BATTERY_CURVE[0][0]:
        return 0
    for i in range(1, len(_BATTERY_CURVE)):
        v1, p1 = _BATTERY_CURVE[i]
        if mv <= v1:
            v0, p0 = _BATTERY_CURVE[i - 1]
            return p0 + (mv - v0) * (p1 - p0) // (v1 - v0)
    return 100


class Board:
    """ESP32-S3 seal board: pins, UARTs, ADC, RTC, littlefs files, watchdog."""

    def __init__(self, machine=None, os_mod=None, time_mod=None, flash_dir=FLASH_DIR):
        if machine is None:
            import machine  # type: ignore[no-redef]
        if os_mod is None:
            import os as os_mod  # type: ignore[no-redef]
        if time_mod is None:
            import time as time_mod  # type: ignore[no-redef]
        self._m = machine
        self._os = os_mod
        self._time = time_mod
        self._dir = flash_dir
        try:
            os_mod.mkdir(flash_dir)
        except OSError:
            pass  # exists
        Pin = machine.Pin
        self.gnss_en = Pin(PIN_GNSS_EN, Pin.OUT, value=1)
        self.cable = Pin(PIN_CABLE, Pin.IN, Pin.PULL_UP)
        self.housing = Pin(PIN_HOUSING, Pin.IN, Pin.PULL_UP)
        # Pin-interrupt latch, 5 small ints per input (cable at 0, housing at 5): edges, ticks of
        # the first opening edge and of the last closing edge (-1: none), ms open in completed
        # openings, ticks of the opening in progress (-1: none). See lock_edges.
        self._latch = [0, -1, -1, 0, -1, 0, -1, -1, 0, -1]
        self.lock_irqs = 0
        self.lock_flag = None  # main.py: an asyncio.ThreadSafeFlag to wake on a lock edge
        self._bench_levels = (True, True)
        trig = Pin.IRQ_RISING | Pin.IRQ_FALLING
        for pin, handler in ((self.cable, self._irq_cable), (self.housing, self._irq_housing)):
            try:
                pin.irq(handler, trig, hard=True)
            except TypeError:  # a port without hard pin interrupts: scheduled ones
                pin.irq(handler, trig)
        self.led = Pin(PIN_LED, Pin.OUT, value=0)
        # rxbuf: 1 s of NMEA at 9600 baud is 960 bytes; main.py drains it every 100 ms.
        self.gnss_uart = machine.UART(GNSS_UART, baudrate=GNSS_BAUD, tx=PIN_GNSS_TX,
                                      rx=PIN_GNSS_RX, rxbuf=2048, timeout=0)
        self.adc = machine.ADC(Pin(PIN_BATTERY), atten=machine.ADC.ATTN_11DB)
        self.rtc = machine.RTC()
        self.wdt = None
        # Bench build only (main.py's bench-control line): levels that replace the real inputs.
        self.bench_lock = None  # (cable_closed, housing_closed) or None: read the pins
        self.bench_battery = None  # ("pct", value) or None: read the ADC
        # time.time()'s epoch: 1970 on current ports, 2000 on old ESP32 builds.
        self._epoch = 0 if time_mod.gmtime(0)[0] == 1970 else _EPOCH_2000
        # ticks_ms() wraps every 2**30 ms (12.4 days); an escort may last longer, so the core
        # gets a clock that never wraps (it must be read more often than every 6 days: it is).
        self._ms = 0
        self._last_ticks = time_mod.ticks_ms()
        self._cause = self._map_reset_cause(machine.reset_cause())
        self.fault = 0  # set by main.py at boot: the fault that made the last program reboot

    # ---- clock ---------------------------------------------------------------------------

    def ticks_ms(self):
        now = self._time.ticks_ms()
        self._ms += self._time.ticks_diff(now, self._last_ticks)
        self._last_ticks = now
        return self._ms

    def unix(self):
        return self._time.time() + self._epoch

    def unix_at(self, ms):
        """The wall clock at an earlier ticks_ms() value, with the RTC's sub-second part."""
        now = self.ticks_ms()
        try:
            sub_ms = self.rtc.datetime()[7] // 1000  # microseconds on the ESP32 port
        except (AttributeError, IndexError, TypeError):
            sub_ms = 500
        return self.unix() - (now - ms - sub_ms + 999) // 1000

    def set_unix(self, t):
        tm = self._time.gmtime(t - self._epoch)
        # RTC.datetime wants (year, month, day, weekday, hours, minutes, seconds, subseconds)
        self.rtc.datetime((tm[0], tm[1], tm[2], tm[6], tm[3], tm[4], tm[5], 0))

    # ---- flash (littlefs: rename replaces atomically) ------------------------------------

    def _path(self, name):
        if "/" in name:
            raise ValueError("flat names only")
        return self._dir + "/" + name

    def open(self, name, mode="rb"):
        return open(self._path(name), mode)

    def rename(self, old, new):
        self._os.rename(self._path(old), self._path(new))

    def remove(self, name):
        self._os.remove(self._path(name))

    def listdir(self):
        return self._os.listdir(self._dir)

    def size(self, name):
        return self._os.stat(self._path(name))[6]

    # ---- inputs --------------------------------------------------------------------------

    def gnss_read(self):
        if not self.gnss_uart.any():
            return None
        return self.gnss_uart.read()

    def lock_levels(self):
        if self.bench_lock is not None:
            return self.bench_lock
        # Pull-ups, contacts to GND: a closed loop / closed housing reads 0.
        return (self.cable.value() == 0, self.housing.value() == 0)

    # Hard interrupt handlers: small-int stores into a preallocated list, nothing allocated.
    def _irq_cable(self, pin):
        self._edge(0, pin.value(), self._time.ticks_ms())

    def _irq_housing(self, pin):
        self._edge(5, pin.value(), self._time.ticks_ms())

    def _edge(self, o, level, now):
        latch = self._latch
        latch[o] += 1
        if level:  # 1: open (the contact to GND is broken)
            if latch[o + 1] < 0:
                latch[o + 1] = now
            latch[o + 4] = now
        else:
            latch[o + 2] = now
            if latch[o + 4] >= 0:
                latch[o + 3] += self._time.ticks_diff(now, latch[o + 4])
                latch[o + 4] = -1
        self.lock_irqs += 1
        flag = self.lock_flag
        if flag is not None:
            flag.set()

    def lock_edges(self, out):
        """Read and clear the interrupt latch (hal.py): out[0:8], per input (cable at 0,
        housing at 4) edges, first opening edge, last closing edge (ms on ticks_ms()'s clock,
        -1 none), ms open in openings that also closed. Returns the number of edges."""
        m = self._m
        latch = self._latch
        state = m.disable_irq()
        try:
            t = self._time.ticks_ms()
            for i in (0, 1):
                o = 5 * i
                k = 4 * i
                out[k] = latch[o]
                out[k + 1] = latch[o + 1]
                out[k + 2] = latch[o + 2]
                out[k + 3] = latch[o + 3]
                latch[o] = 0
                latch[o + 1] = -1
                latch[o + 2] = -1
                latch[o + 3] = 0  # an opening in progress (o + 4) is kept: it closes later
        finally:
            m.enable_irq(state)
        now = self.ticks_ms()
        for k in (1, 2, 5, 6):
            if out[k] >= 0:
                out[k] = now - self._time.ticks_diff(t, out[k])
        return out[0] + out[4]

    def battery_pct(self):
        if self.bench_battery is not None:
            return self.bench_battery[1]
        try:
            uv = self.adc.read_uv()
        except (AttributeError, OSError):
            return None
        return battery_percent(uv * BATTERY_DIVIDER // 1000)

    def reset_cause(self):
        # HELLO takes the low byte; the REBOOT event's value also carries the fault (bits 8-15)
        return self._cause | self.fault << 8

    def _map_reset_cause(self, cause):
        # machine constants -> protocol HELLO.reset_cause. The ESP32 port reports a brownout
        # as a power-on reset, so BROWNOUT (3) cannot be told apart here.
        m = self._m
        if cause == m.PWRON_RESET:
            return 0
        if cause == m.WDT_RESET:
            return 1
        if cause == m.SOFT_RESET:
            return 2
        if cause == m.DEEPSLEEP_RESET:
            return 4
        return 255  # HARD_RESET (reset pin) and anything new

    # ---- board-only: watchdog, bench UART, network ----------------------------------------

    def wdt_start(self, timeout_ms=WDT_TIMEOUT_MS):
        """Once started the watchdog cannot be stopped: main.py feeds it from its loop."""
        self.wdt = self._m.WDT(timeout=timeout_ms)

    def wdt_feed(self):
        if self.wdt is not None:
            self.wdt.feed()

    def bench_uart(self):
        return self._m.UART(BENCH_UART, baudrate=BENCH_BAUD, tx=PIN_BENCH_TX, rx=PIN_BENCH_RX,
                            rxbuf=4096, timeout=0)

    def bench_ctl_uart(self):
        """The bench-control line's UART (bench builds only; never opened otherwise)."""
        return self._m.UART(BENCH_CTL_UART, baudrate=BENCH_BAUD, tx=PIN_BENCH_CTL_TX,
                            rx=PIN_BENCH_CTL_RX, rxbuf=1024, timeout=0)

    def bench_set_lock(self, cable_closed, housing_closed):
        # As the pins would: each change of level is an interrupt edge in the latch.
        old = self._bench_levels if self.bench_lock is None else self.bench_lock
        self.bench_lock = (cable_closed, housing_closed)
        now = self._time.ticks_ms()
        state = self._m.disable_irq()
        try:
            if bool(cable_closed) != bool(old[0]):
                self._edge(0, 0 if cable_closed else 1, now)
            if bool(housing_closed) != bool(old[1]):
                self._edge(5, 0 if housing_closed else 1, now)
        finally:
            self._m.enable_irq(state)

    def bench_pulse(self, which, width_ms):
        """An opening of `which` ("cable" or "housing") width_ms wide that has just ended, as
        the pin interrupts would have latched it (the bench-control line's LOCK PULSE)."""
        o = 0 if which == "cable" else 5
        now = self._time.ticks_ms()
        state = self._m.disable_irq()
        try:
            self._edge(o, 1, self._time.ticks_add(now, -width_ms))
            self._edge(o, 0, now)
        finally:
            self._m.enable_irq(state)

    def bench_set_battery(self, pct):
        self.bench_battery = ("pct", pct)

    def reboot(self):
        """Bench REBOOT: machine.reset() (reported as SOFT_RESET by the ESP32 port)."""
        self._time.sleep_ms(20)  # let the UART finish sending the reply
        self._m.reset()

    def modem_power_on(self):
        # SIMCom PWRKEY: pull low for ~1 s to switch on (through an NPN: high here = low there).
        key = self._m.Pin(PIN_MODEM_PWRKEY, self._m.Pin.OUT, value=0)
        key.value(1)
        self._time.sleep_ms(1100)
        key.value(0)

    def network_up(self, wifi_ssid=None, wifi_password=None, apn=None):
        """Bring up the IP link: Wi-Fi (bench and depot) if an SSID is given, else the LTE modem
        as PPP. Returns the network interface; the caller waits for isconnected()."""
        import network

        if wifi_ssid:
            wlan = network.WLAN(network.WLAN.IF_STA)
            wlan.active(True)
            wlan.connect(wifi_ssid, wifi_password)
            return wlan
        self.modem_power_on()
        uart = self._m.UART(MODEM_UART, baudrate=MODEM_BAUD, tx=PIN_MODEM_TX, rx=PIN_MODEM_RX,
                            rxbuf=4096, timeout=100)
        # Dial: AT+CGDCONT=1,"IP","<apn>" then ATD*99#; after CONNECT the UART carries PPP.
        for cmd in (b"AT\r", b'AT+CGDCONT=1,"IP","' + (apn or "internet").encode() + b'"\r',
                    b"ATD*99#\r"):
            uart.write(cmd)
            self._time.sleep_ms(500)
            uart.read()
        ppp = network.PPP(uart)
        ppp.active(True)
        ppp.connect()
        return ppp
