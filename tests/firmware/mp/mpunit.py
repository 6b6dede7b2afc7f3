# A tiny test runner that works under MicroPython and CPython alike (no unittest, no pytest
# on a board). A test module defines functions named test_*; plain `assert` does the checking
# (these modules are run from source, never with asserts optimised away).
#
#   import mpunit
#   mpunit.run(["mpt_codec", "mpt_nmea"])   # prints one line per test, returns failures
#
# Paths of shared test data, set by whoever starts the run (pytest wrapper or MicroPython
# runner): VECTORS (protocol/vectors), NMEA (the receiver captures), TMP (scratch).
import sys

VECTORS = "/vectors"
NMEA = "/nmea"
TMP = "/tmp"  # a writable scratch directory


def _tests(mod):
    names = [n for n in dir(mod) if n.startswith("test_")]
    names.sort()
    return names


def run(module_names, verbose=True):
    failures = 0
    count = 0
    for name in module_names:
        mod = __import__(name)
        for tname in _tests(mod):
            count += 1
            try:
                getattr(mod, tname)()
            except Exception as exc:  # noqa: BLE001 - a runner reports every failure
                failures += 1
                print("FAIL", name + "." + tname, type(exc).__name__, exc)
                if hasattr(sys, "print_exception"):
                    sys.print_exception(exc)  # type: ignore[attr-defined]
                else:
                    import traceback

                    traceback.print_exc()
            else:
                if verbose:
                    print("ok  ", name + "." + tname)
    print("MPUNIT", count, "tests", failures, "failures")
    return failures


def raises(code_or_exc, fn, *args):
    """Call fn(*args); return the exception it raised. `code_or_exc` is an exception class or
    a CodecError code string (compared with the exception's `.code`)."""
    try:
        fn(*args)
    except Exception as exc:  # noqa: BLE001
        if isinstance(code_or_exc, str):
            got = getattr(exc, "code", None)
            assert got == code_or_exc, "expected code %s, got %r (%r)" % (code_or_exc, got, exc)
        else:
            assert isinstance(exc, code_or_exc), "expected %r, got %r" % (code_or_exc, exc)
        return exc
    raise AssertionError("no exception, expected %r" % (code_or_exc,))
