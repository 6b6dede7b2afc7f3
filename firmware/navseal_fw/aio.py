# asyncio and clock helpers that read the same under MicroPython and CPython, so the links and
# main.py run unchanged on a board, on the unix port, under the WebAssembly build and in CPython.
#
#   await sleep_ms(ms)
#   await wait_ms(awaitable, ms)    -> its result, or raises TIMEOUT_ERRORS after ms
#   await wait_event(event, ms)     -> True if the event was set, False on timeout
#   ticks_ms(), ticks_diff(a, b)    a millisecond clock that only moves forward (differences only)
#   new_flag(); await wait_flag(f)  an asyncio.ThreadSafeFlag (set from a pin interrupt) where
#                                   the port has one, else an asyncio.Event; wait_flag clears it
import asyncio
import time

# MicroPython: time.ticks_ms wraps (ticks_diff handles it); CPython: monotonic seconds.
_TICKS = getattr(time, "ticks_ms", None)
_DIFF = getattr(time, "ticks_diff", None)

# asyncio.TimeoutError: builtins.TimeoutError on CPython >= 3.11, asyncio's own class on
# MicroPython (which has no builtin of that name).
TIMEOUT_ERRORS = (asyncio.TimeoutError,)


def ticks_ms():
    if _TICKS is not None:
        return _TICKS()
    return int(getattr(time, "monotonic")() * 1000)  # CPython


def ticks_diff(a, b):
    if _DIFF is not None:
        return _DIFF(a, b)
    return a - b


def sleep_ms(ms):
    if hasattr(asyncio, "sleep_ms"):
        return asyncio.sleep_ms(ms)  # type: ignore[attr-defined]
    return asyncio.sleep(ms / 1000)


def wait_ms(aw, ms):
    # A measured timeout: the awaitable is cancelled after ms, whatever the socket said.
    if hasattr(asyncio, "wait_for_ms"):
        return asyncio.wait_for_ms(aw, ms)  # type: ignore[attr-defined]
    return asyncio.wait_for(aw, ms / 1000)


async def wait_event(event, ms):
    if event.is_set():
        return True
    try:
        await wait_ms(event.wait(), ms)
    except TIMEOUT_ERRORS:
        return False
    return True


def new_flag():
    cls = getattr(asyncio, "ThreadSafeFlag", None)
    return cls() if cls is not None else asyncio.Event()


async def wait_flag(flag):
    await flag.wait()
    if hasattr(flag, "is_set"):
        flag.clear()  # an asyncio.Event; a ThreadSafeFlag clears itself when its wait returns
