# boot.py: runs first on every reset, before main.py. Keep it tiny: anything that fails here
# leaves the board without its watchdog-fed main loop.
#
# The seal's files live in /data on the board's littlefs partition (flashed by
# `navseal flash`, provisioned by `navseal provision`). Nothing else to do: no REPL on the GNSS
# UART, no Wi-Fi here (main.py brings the link up when it needs it).
import gc

try:
    import esp  # type: ignore[import-not-found]

    esp.osdebug(None)  # IDF log output off the console UART the bench may listen to
except ImportError:
    pass

gc.collect()
