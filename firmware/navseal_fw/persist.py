# Small records on flash that survive a power cut at any point: escort state, alarm latches,
# boot counter, last accepted command, journal release point.
#
# A save writes `<name>.new` completely (header, data, CRC), then renames it over `<name>`.
# A load takes the valid copy with the highest generation among `<name>` and `<name>.new`:
#   - cut while writing .new: .new fails its CRC, <name> is the old good copy;
#   - cut after .new is complete but before the rename: .new is valid and newer, it wins
#     (the save was in progress, so old or new are both correct answers: it is atomic);
#   - FAT, where MicroPython renames by unlink-then-rename: <name> may be gone, .new wins.
# So a load returns either the previous value or the new one, never a mixture, and never
# loses a value that a completed save() wrote.
#
# File layout: b"NP" magic, u8 version, u8 0, u32 generation, u16 length, data, u32 CRC-32
# (binascii.crc32, the protocol's CRC) over everything before it. Big-endian like the wire.

import struct
from binascii import crc32

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):  # type: ignore[no-redef,misc]  # the stub's signature is generic
        return x

_HDR = const(10)
_MAGIC = b"NP\x01\x00"


class Store:
    def __init__(self, hal, name):
        self._hal = hal
        self.name = name
        self.generation = 0

    @property
    def _new(self):
        return self.name + ".new"  # built when used (rarely): a seal holds a dozen Stores

    def _read(self, name):
        # -> (generation, data) or None when missing, short or corrupt.
        try:
            f = self._hal.open(name, "rb")
        except OSError:
            return None
        try:
            raw = f.read()
        finally:
            f.close()
        if len(raw) < _HDR + 4 or raw[0:4] != _MAGIC:
            return None
        gen, length = struct.unpack(">IH", raw[4:10])
        if len(raw) != _HDR + length + 4:
            return None
        (crc,) = struct.unpack(">I", raw[_HDR + length:])
        if crc32(raw[0:_HDR + length]) & 0xFFFFFFFF != crc:
            return None
        return gen, raw[_HDR:_HDR + length]

    def load(self):
        # -> bytes of the last good copy, or None if there never was one.
        cur = self._read(self.name)
        new = self._read(self._new)
        best = cur
        if new is not None and (cur is None or new[0] > cur[0]):
            best = new
            # Finish the interrupted save so the next save starts from a clean pair.
            self._hal.rename(self._new, self.name)
        elif new is None and self._exists(self._new):
            self._hal.remove(self._new)
        if best is None:
            return None
        self.generation = best[0]
        return best[1]

    def _exists(self, name):
        try:
            self._hal.size(name)
            return True
        except OSError:
            return False

    def save(self, data):
        gen = (self.generation + 1) & 0xFFFFFFFF
        head = _MAGIC + struct.pack(">IH", gen, len(data))
        crc = crc32(data, crc32(head)) & 0xFFFFFFFF
        f = self._hal.open(self._new, "wb")
        try:
            # One write so a board driver can hand it to the flash in one go.
            f.write(head + bytes(data) + struct.pack(">I", crc))
            f.flush()
        finally:
            f.close()
        self._hal.rename(self._new, self.name)
        self.generation = gen


class Counter:
    # A persisted u32 on top of Store (boot counter and similar).
    def __init__(self, hal, name):
        self._store = Store(hal, name)
        self.value = 0

    def load(self):
        raw = self._store.load()
        self.value = struct.unpack(">I", raw)[0] if raw is not None and len(raw) == 4 else 0
        return self.value

    def save(self, value):
        self._store.save(struct.pack(">I", value))
        self.value = value
