# Store-and-forward journal: every position and event the seal must deliver, on flash, until the
# gateway's ACK says it is durably stored (docs/protocol.md, ACK.committed_rseq).
#
# Past 400 lines on purpose: the on-flash format, recovery after a power cut, thinning and the
# ACK window keep one invariant together (no record lost or sent twice across power cuts), and
# on the seal every module costs heap of its own (module object, globals, names).
#
# Layout (see docs/firmware.md, "Core"): a ring of append-only segment files "j<8 digits>.seg".
#   segment header, 32 bytes: two identical 16-byte copies, each b"NJ\x02\x00", u32 base_rseq,
#                             u32 base_time, u8 thin level, u8 0, u16 check (low 16 bits of
#                             CRC-32 over the copy's bytes 0..13). Either valid copy suffices:
#                             a damaged header costs no record (recovery rewrites the segment
#                             with two good copies). Format 1 (one 16-byte copy) is not read.
#   record, 20 bytes:         u16 kind|rseq offset (bit 15 set: event; bits 0-14: rseq - base_rseq)
#                             u16 dt (seconds after base_time)
#                             i32 lat, i32 lon (1e-7 degree, 0x7FFFFFFF = none)
#                             position: u16 speed, u8 course, u8 fix, u8 hdop, u8 status
#                             event:    u32 value,               u8 code, u8 status
#                             u16 check (low 16 bits of CRC-32 over bytes 0..17)
# Bytes 4..17 of a position record are bytes 2..15 of the protocol's 16-byte RECORDS record, so a
# batch is built by copying, with only dt rebased.
#
# Power cuts: records are appended and flushed one at a time; a cut leaves a short or failing last
# record, which recovery drops (and rewrites the segment without it, so appends never follow
# garbage). Segments are only ever replaced whole (write "<seg>.tmp", rename over), so a cut during
# thinning or repair leaves the old segment intact. The release point (highest committed rseq) is a
# persist.Counter written before released segments are deleted, and rseq never goes back because
# next_rseq = max(highest rseq on flash, release point) + 1.
#
# Flash damage (bit rot, a bad write) costs the damaged record only. Records are fixed size, so
# every reader goes on at the next record boundary past a record that is bad: its check fails, or
# its rseq is not above the previous valid one's, or above its segment's last. Bad records with a
# valid one after them in the segment are damage: skipped and counted once in `corrupt`. Bad bytes
# after the newest record are a torn tail (trimmed; whole records there may have been sent before
# they rotted, so their rseq are not issued again). Recovery rewrites a scanned segment without
# its bad records; a closed segment's damage is met (and skipped) by the readers and dropped by
# the next rewrite. Any single bit flip in a record fails its check (measured, every position).
# A damaged segment header costs no record: either of its two copies gives the base rseq and time,
# and recovery rewrites a segment with one bad copy (both copies bad: that segment is lost).
#
# Sending: a read cursor in RAM (segment index, byte offset, and the release point it is valid for)
# marks the first unreleased record. peek() reads the batch from it; release() moves it past what
# the ACK committed, without reading flash when the ACK covers exactly what was last peeked. So a
# frame costs about one read per record sent, whatever the segment size. The cursor is never
# persisted: recovery derives it (and `pending`, the records from it to the end) with one short
# scan, and so does every rewrite of a segment (thinning, compaction).
#
# When full: the oldest, least-thinned segment (never the one being appended to) is rewritten
# keeping every event and every k-th position; the count dropped goes into a JOURNAL_OVERFLOW
# event. If nothing is left to thin, new positions are refused (counted in `refused`) and events
# are still written: an event is never dropped.
#
# The escort's count: `esc_thinned` is the number of positions with rseq above `thin_floor` (the
# escort's start_rseq) that thinning dropped, exact across power cuts: a persist.Store "<p>thin"
# holds (floor, count) and, written just before the rewrite's rename, the intent (segment,
# dropped); recovery finds the rename done (no .tmp left) or not, and counts accordingly.

import struct
from binascii import crc32

from navseal_fw.persist import Counter, Store

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):  # type: ignore[no-redef,misc]  # the stub's signature is generic
        return x

REC_SIZE = const(20)
SEG_HDR = const(32)  # two copies of the 16-byte header
_HDR_COPY = const(16)
WIRE_REC = const(16)
MAX_BATCH = const(120)
_EVENT = const(0x8000)
_OFF_MASK = const(0x7FFF)
_NO_THIN = const(255)
NO_FLOOR = const(0x3FFFFFFF)  # no escort: nothing counts (also keeps comparisons in small ints)
EVENT_JOURNAL_OVERFLOW = const(8)
_SEG_MAGIC = b"NJ\x02\x00"

KIND_NONE = const(0)
KIND_RECORDS = const(1)
KIND_EVENT = const(2)


def _check16(buf, n):
    return crc32(buf[0:n]) & 0xFFFF


class Journal:
    def __init__(self, hal, capacity=100000, seg_records=1021, thin_keep=2, prefix="j"):
        if seg_records < 2 or seg_records > _OFF_MASK:
            raise ValueError("seg_records out of range")
        if capacity < 2 * seg_records:
            raise ValueError("capacity must hold at least two segments")
        self._hal = hal
        self.capacity = capacity
        self.seg_records = seg_records
        self.thin_keep = thin_keep
        self._prefix = prefix
        self._acked_ctr = Counter(hal, prefix + "ack")
        # rseq issued at least up to here: written only when recovery trims whole records that
        # rotted at the tail (they may have been sent), so their rseq are never issued again.
        self._issued_ctr = Counter(hal, prefix + "top")
        self._thin_store = Store(hal, prefix + "thin")
        self.thin_floor = NO_FLOOR  # positions above this rseq count in esc_thinned
        self.esc_thinned = 0
        # Preallocated buffers: one flash record, one batch of wire records.
        self._rec = bytearray(REC_SIZE)
        self._rec_body = memoryview(self._rec)[0:18]  # what the check covers
        self._rec_wire = memoryview(self._rec)[4:18]  # what a RECORDS record copies
        self._hdr = bytearray(SEG_HDR)
        self.batch = bytearray(MAX_BATCH * WIRE_REC)
        self._batch_mv = memoryview(self.batch)
        # Segment table, oldest first (parallel lists of small ints: no per-segment objects).
        self._segno = []
        self._base_rseq = []
        self._base_time = []
        self._last = []
        self._count = []
        self._thin = []
        self._head = None  # open file of the last segment
        self.acked = 0
        self.next_rseq = 1
        self.pending = 0
        self.stored = 0
        self.thinned = 0  # positions dropped by thinning, total since boot
        self.refused = 0  # positions refused because nothing was left to thin
        # Damaged records (check fails, or rseq out of order) skipped since boot, each counted
        # once: when recovery, the read cursor or a rewrite (thinning, compaction) first meets
        # it. Bad bytes after the newest record are a torn tail instead (`repaired`).
        self.corrupt = 0
        self.repaired = 0  # segments rewritten at recovery (torn tail, damage, header copy)
        self._hdr_bad = False  # the last header read had one damaged copy
        self._last_t = 0  # time of the newest record appended
        self._copy_thinned = 0  # unreleased positions the last rewrite dropped
        self._copy_last = -1  # rseq of the last record the last rewrite kept
        self._episode = False  # thinning since the journal was last below half full
        self._unreported = 0  # positions thinned in this episode not yet in an event
        self._ov_lat = 0
        self._ov_lon = 0
        self._ov_status = 0
        # Read cursor (RAM only): the slot (segment index, byte offset) of the first unreleased
        # record; every slot before it holds a record with rseq <= acked or a corrupt one.
        # Valid while _cur_acked == acked; -1 means "derive it by a scan" (_find_cursor).
        # pending == the slots from the cursor to the end of the journal.
        self._cur_i = 0
        self._cur_off = SEG_HDR
        self._cur_acked = -1
        # Where the cursor goes when the records last peeked are released (the slot after the
        # last one), and how many slots that passes. _nx_ok: valid for release(b_last) (no
        # release, rewrite or segment removal since the peek).
        self._nx_ok = False
        self._nx_i = 0
        self._nx_off = SEG_HDR
        self._nx_slots = 0
        self._nx_bad = 0
        # Last peek: what the caller got.
        self.b_kind = KIND_NONE
        self.b_first = 0
        self.b_last = 0
        self.b_count = 0
        self.b_base_time = 0
        self.ev_time = 0
        self.ev_code = 0
        self.ev_lat = 0
        self.ev_lon = 0
        self.ev_status = 0
        self.ev_value = 0

    # ---- names and headers --------------------------------------------------------------------

    def _name(self, segno):
        return "%s%08d.seg" % (self._prefix, segno)

    def _read_header(self, name):
        # -> (base_rseq, base_time, thin) from the first valid copy, or None when neither is
        # valid or the file is shorter than the header (torn while being created: a segment's
        # first record is written only after its whole header). Sets _hdr_bad when one copy is
        # damaged. Two copies that both pass their check but differ (a damaged one passing by
        # chance, odds 2^-16): the first wins.
        self._hdr_bad = False
        try:
            f = self._hal.open(name, "rb")
        except OSError:
            return None
        try:
            n = f.readinto(self._hdr)
        finally:
            f.close()
        if n != SEG_HDR:
            return None
        h = self._hdr
        got = None
        for o in (0, _HDR_COPY):
            c = h[o:o + _HDR_COPY]
            if c[0:4] == _SEG_MAGIC and (c[14] << 8 | c[15]) == _check16(c, 14):
                if got is None:
                    got = struct.unpack(">IIB", c[4:13])
            else:
                self._hdr_bad = True
        return got

    def _pack_header(self, base_rseq, base_time, thin):
        h = self._hdr
        h[0:4] = _SEG_MAGIC
        struct.pack_into(">IIBB", h, 4, base_rseq, base_time, thin, 0)
        struct.pack_into(">H", h, 14, _check16(h, 14))
        h[_HDR_COPY:SEG_HDR] = h[0:_HDR_COPY]
        return h

    # The per-record helpers below index bytes instead of slicing and unpacking: a recovery scan
    # or a batch touches every record, and on MicroPython each slice is a heap allocation.
    def _valid_rec(self):
        r = self._rec
        return (r[18] << 8 | r[19]) == crc32(self._rec_body) & 0xFFFF

    def _word(self):
        return self._rec[0] << 8 | self._rec[1]

    def _seal_rec(self):
        c = crc32(self._rec_body) & 0xFFFF
        self._rec[18] = c >> 8
        self._rec[19] = c & 0xFF

    # ---- recovery -----------------------------------------------------------------------------

    def set_thin_floor(self, floor):
        # Count thinned positions above `floor` from now on, from zero (ACTIVATE: start_rseq;
        # DEACTIVATE: none). One small write.
        self.thin_floor = floor
        self.esc_thinned = 0
        self._save_thin(0, 0)

    def _save_thin(self, segno, delta):
        self._thin_store.save(struct.pack(">IIII", self.thin_floor, self.esc_thinned, segno, delta))

    def _load_thin(self):
        # Before recovery removes leftover .tmp files: a pending intent counts if its rename
        # happened (the .tmp is gone), not if it did not (the .tmp is still there).
        raw = self._thin_store.load()
        if raw is None or len(raw) != 16:
            return
        self.thin_floor, self.esc_thinned, segno, delta = struct.unpack(">IIII", raw)
        if segno:
            try:
                self._hal.size(self._name(segno)[:-4] + ".tmp")
            except OSError:
                self.esc_thinned += delta
            self._save_thin(0, 0)

    def recover(self):
        # Rebuild the segment table from flash. Cost: one header and one record per closed segment,
        # plus a full scan of the last segment (and of any segment whose tail looks wrong), plus
        # the records before the read cursor in the segment holding the release point.
        self.close()
        self._load_thin()
        self._cur_acked = -1
        self._nx_ok = False
        self.acked = self._acked_ctr.load()
        segnos = []
        plen = len(self._prefix)
        for name in self._hal.listdir():
            if not name.startswith(self._prefix):
                continue
            if name.endswith(".tmp"):
                self._hal.remove(name)  # an interrupted rewrite; its original is intact
            elif name.endswith(".seg"):
                try:
                    segnos.append(int(name[plen:-4]))
                except ValueError:
                    pass
        segnos.sort()
        del self._segno[:], self._base_rseq[:], self._base_time[:], self._last[:]
        del self._count[:], self._thin[:]
        self.stored = 0
        top = self.acked
        # Highest rseq known issued before the head's records: earlier segments, reservations.
        floor = self._issued_ctr.load()
        if floor > top:
            top = floor
        last_i = len(segnos) - 1
        for i in range(len(segnos)):
            segno = segnos[i]
            name = self._name(segno)
            hdr = self._read_header(name)
            if hdr is None:
                self._hal.remove(name)  # torn while being created: it holds no record
                continue
            base_rseq, base_time, thin = hdr
            hdr_bad = self._hdr_bad  # one copy damaged: scan and rewrite it with two good ones
            if self._last and base_rseq <= self._last[-1]:
                # The leftover of a merge cut before its sources were removed: the merged
                # segment before it already holds what was to be kept of it.
                self._hal.remove(name)
                continue
            size = self._hal.size(name)
            whole = (size - SEG_HDR) // REC_SIZE
            torn = (size - SEG_HDR) % REC_SIZE
            last_rseq = -1
            count = whole
            if i != last_i and not torn and whole > 0 and not hdr_bad:
                last_rseq = self._read_rec_rseq(name, base_rseq, SEG_HDR + (whole - 1) * REC_SIZE)
                if last_rseq < base_rseq + whole - 1:
                    # Below one rseq per record: a last record that passes its check by chance
                    # (16 bits) but lies. The scan below treats it as damage.
                    last_rseq = -1
            if last_rseq < 0:
                count, first, last_rseq, bad, tail = self._scan(name, base_rseq)
                if i == last_i:
                    # Bad whole records after the last valid one of the head: a torn tail
                    # (trimmed, not counted as damage). Being whole, they may have been sent
                    # before they went bad: their rseq are not issued again, even after the
                    # trim (persisted first: a cut before the trim finds the same tail again).
                    # The head's rseq run one per record from the one before its first record
                    # (a repair rebases it on its first valid record, below), so they are the
                    # next `tail` ones (each bad record is at least one above the one before,
                    # which their rseq fields, damaged, cannot be trusted to tell).
                    if tail:
                        if base_rseq - 1 > floor:
                            floor = base_rseq - 1
                        if count and last_rseq > floor:
                            floor = last_rseq
                        gone = floor + tail
                        if gone > self._issued_ctr.value:
                            self._issued_ctr.save(gone)
                        if gone > top:
                            top = gone
                else:
                    bad += tail  # a closed segment was complete: anything bad in it is damage
                if count != whole or torn or hdr_bad:
                    # Rewrite with the valid records only, so appends never follow garbage and
                    # the readers never meet these slots again; rebased on the first of them
                    # (so base_rseq - 1 stays the rseq before the segment's first record).
                    if count:
                        self._copy(segno, first, base_time, thin, -1, 0, 0, 1, base_rseq)
                        base_rseq = first
                    self.repaired += 1
                self.corrupt += bad
            if count == 0:
                self._hal.remove(name)
                continue
            self._segno.append(segno)
            self._base_rseq.append(base_rseq)
            self._base_time.append(base_time)
            self._last.append(last_rseq)
            self._count.append(count)
            self._thin.append(thin)
            self.stored += count
            if last_rseq > top:
                top = last_rseq
            if last_rseq > floor:
                floor = last_rseq
        self.next_rseq = top + 1
        self._drop_released()
        self._count_pending()
        return self.pending

    def _read_rec_rseq(self, name, base_rseq, off):
        f = self._hal.open(name, "rb")
        try:
            f.seek(off)
            n = f.readinto(self._rec)
        finally:
            f.close()
        if n != REC_SIZE or not self._valid_rec():
            return -1
        return base_rseq + (self._word() & _OFF_MASK)

    def _scan(self, name, base_rseq):
        # Check every whole record of a segment. A record is valid when its check passes and
        # its rseq is above the previous valid one's; records are fixed size, so the scan goes
        # on past a bad one at the next record boundary.
        # -> (valid count, first and last valid rseq or -1, bad records followed by a valid one
        # (damage), bad records after the last valid one).
        count = 0
        first = -1
        last = -1
        bad = 0
        tail = 0
        f = self._hal.open(name, "rb")
        try:
            f.seek(SEG_HDR)
            while f.readinto(self._rec) == REC_SIZE:
                if self._valid_rec():
                    rseq = base_rseq + (self._word() & _OFF_MASK)
                    if rseq > last:
                        if count == 0:
                            first = rseq
                        last = rseq
                        count += 1
                        bad += tail
                        tail = 0
                        continue
                tail += 1
        finally:
            f.close()
        return count, first, last, bad, tail

    def _count_pending(self):
        # Derive the cursor (one scan of at most the segment holding the release point), then
        # pending = the slots from it to the end: arithmetic on the segment table, no reads.
        self._find_cursor()
        n = len(self._segno)
        i = self._cur_i
        pending = 0
        if i < n:
            pending = self._count[i] - (self._cur_off - SEG_HDR) // REC_SIZE
            for k in range(i + 1, n):
                pending += self._count[k]
        self.pending = pending

    def close(self):
        if self._head is not None:
            self._head.close()
            self._head = None

    # ---- appending ----------------------------------------------------------------------------

    def append_position(self, t, lat, lon, speed, course, fix, hdop, status):
        # -> rseq of the new record, or 0 when refused (full of events, nothing left to thin).
        if self.stored >= self.capacity and not self._make_room(t, lat, lon, status):
            self.refused += 1
            return 0
        r = self._rec
        struct.pack_into(">iiHBBBB", r, 4, lat, lon, speed, course, fix, hdop, status)
        return self._append(t, 0)

    def append_event(self, t, code, lat, lon, status, value):
        # -> rseq. Never refused for lack of room (an event is never dropped).
        if self.stored >= self.capacity:
            self._make_room(t, lat, lon, status)
        self._pack_event(code, lat, lon, status, value)
        return self._append(t, _EVENT)

    def _pack_event(self, code, lat, lon, status, value):
        struct.pack_into(">iiIBB", self._rec, 4, lat, lon, value & 0xFFFFFFFF, code, status)

    def _append(self, t, kind):
        rseq = self.next_rseq
        n = len(self._segno)
        if self._head is None and n:
            self._open_head()
        if (
            self._head is None
            or self._count[n - 1] >= self.seg_records
            or t < self._base_time[n - 1]
            or t - self._base_time[n - 1] > 0xFFFF
            or rseq - self._base_rseq[n - 1] > _OFF_MASK
        ):
            self._new_segment(rseq, t)
            n = len(self._segno)
        r = self._rec
        struct.pack_into(">HH", r, 0, kind | (rseq - self._base_rseq[n - 1]), t - self._base_time[n - 1])
        self._seal_rec()
        head = self._head
        if head is None:
            raise OSError(5)  # EIO: the head segment could not be opened
        head.write(r)
        head.flush()
        self._last[n - 1] = rseq
        self._count[n - 1] += 1
        self.stored += 1
        self.pending += 1
        self.next_rseq = rseq + 1
        self._last_t = t
        return rseq

    def _new_segment(self, base_rseq, t):
        self.close()
        segno = self._segno[-1] + 1 if self._segno else 1
        f = self._hal.open(self._name(segno), "wb")
        try:
            f.write(self._pack_header(base_rseq, t, 0))
            f.flush()
        except Exception:
            f.close()
            raise
        self._segno.append(segno)
        self._base_rseq.append(base_rseq)
        self._base_time.append(t)
        self._last.append(base_rseq - 1)
        self._count.append(0)
        self._thin.append(0)
        self._head = f

    def _open_head(self):
        # After recovery the last segment is clean (repaired) and can take appends again.
        if self._head is None and self._segno:
            self._head = self._hal.open(self._name(self._segno[-1]), "ab")

    # ---- thinning -----------------------------------------------------------------------------

    def _make_room(self, t, lat, lon, status):
        # Thin segments until there is room for one record (plus the overflow event). Returns
        # False if nothing could be thinned.
        # Free a chunk (an eighth of the capacity), not one record: each pass costs a segment
        # rewrite and an overflow event, so passes must be rare.
        goal = self.capacity - 2 - self.capacity // 8
        self._compact_released()  # delivered records first: dropping them loses nothing
        dropped = 0
        while self.stored > goal:
            i = self._pick_thin()
            if i < 0:
                break
            dropped += self._thin_segment(i)
        if dropped:
            self.thinned += dropped
            # One event when an overflow episode starts; later passes of the same episode add up
            # in RAM and go out as one more event when it ends (see release()), so a long gap
            # does not fill the journal with overflow events that can never be thinned.
            if self._episode:
                self._unreported += dropped
                self._ov_lat = lat
                self._ov_lon = lon
                self._ov_status = status
            else:
                self._episode = True
                self._pack_event(EVENT_JOURNAL_OVERFLOW, lat, lon, status, dropped)
                self._append(t, _EVENT)
        return self.stored < self.capacity

    def _compact_released(self):
        # The oldest segment may hold records the gateway already committed (a segment goes
        # only when all of it is released): rewrite it without them.
        if len(self._segno) < 2 or self._base_rseq[0] > self.acked:
            return
        before = self._count[0]
        kept = self._rewrite(0, 1, self.acked, 1, self._thin[0])
        if kept < 0:
            return
        if kept == 0:
            self._hal.remove(self._name(self._segno[0]))
            self._forget(0)
        else:
            self._count[0] = kept
        self.stored -= before - kept
        self._count_pending()  # segment 0 was rewritten: the cursor's offset is stale

    def _pick_thin(self):
        # Oldest segment with the lowest thin level, never the head (it is being appended to).
        best = -1
        for i in range(len(self._segno) - 1):
            if self._thin[i] == _NO_THIN:
                continue
            if best < 0 or self._thin[i] < self._thin[best]:
                best = i
        return best

    def _thin_segment(self, i):
        # Thin segment i together with the segments after it (never the head) as long as the
        # result fits one segment's rseq and time range: merging keeps thinned segments from
        # each pinning one position forever, and keeps the file count down.
        head = len(self._segno) - 1
        e = i + 1
        total = self._count[i]
        while (e < head and total + self._count[e] <= self.seg_records * self.thin_keep
               and self._last[e] - self._base_rseq[i] <= _OFF_MASK
               and self._base_time[e] >= self._base_time[i]):
            total += self._count[e]
            e += 1
        before = 0
        level = 0
        for k in range(i, e):
            before += self._count[k]
            if self._thin[k] != _NO_THIN and self._thin[k] > level:
                level = self._thin[k]
        kept = self._rewrite(i, e, self.acked, self.thin_keep, level + 1 if level < 254 else 254)
        if kept < 0:  # times did not fit one segment: thin this one alone
            e = i + 1
            before = self._count[i]
            kept = self._rewrite(i, e, self.acked, self.thin_keep, level + 1 if level < 254 else 254)
        removed = before - kept
        # What the overflow event reports: unreleased positions dropped (released records that
        # went too were already delivered).
        dropped = self._copy_thinned
        # The merged file now holds everything of i..e-1: the others go (a cut here leaves
        # leftovers whose rseq overlap the merged file; recovery removes them).
        for k in range(e - 1, i, -1):
            self._hal.remove(self._name(self._segno[k]))
            self._forget(k)
        if kept == 0:
            self._hal.remove(self._name(self._segno[i]))
            self._forget(i)
        else:
            self._count[i] = kept
            if removed == 0 and e == i + 1:
                self._thin[i] = _NO_THIN  # only events (or one position) left here
        self.stored -= removed
        self._count_pending()  # rewritten segments: derive the cursor again
        return dropped

    def _rewrite(self, i, e, drop_upto, keep_every, level):
        # Copy the valid records of segments i..e-1 into "<seg i>.tmp" rebased on segment i,
        # keeping every event and every keep_every-th position, dropping records with
        # rseq <= drop_upto; then rename over segment i. Returns the records kept, or -1 (tmp
        # removed, nothing changed) if a record's time does not fit segment i's base.
        base_rseq = self._base_rseq[i]
        base_time = self._base_time[i]
        kept = self._copy(self._segno[i], base_rseq, base_time, level, i, e, drop_upto, keep_every)
        if kept > 0:
            self._last[i] = self._copy_last
        if kept >= 0:
            self._thin[i] = level
        return kept

    def _copy(self, segno, base_rseq, base_time, level, i, e, drop_upto, keep_every,
              src_base=-1):
        # Every valid record of the sources is considered; a bad one (check fails, rseq not
        # above the previous valid one, or above its segment's last) is skipped and counted in
        # `corrupt` unless the read cursor already passed it (counted then) or this is
        # recovery's repair (i < 0: the segment itself, header base src_base; the scan counted
        # its damage).
        name = self._name(segno)
        tmp = name[:-4] + ".tmp"
        r = self._rec
        kept = 0
        thinned = 0
        esc = 0  # of those, above the escort's floor
        floor = self.thin_floor
        pos_index = 0
        bad = 0
        last = -1
        kept_last = -1
        ok = True
        cur_ok = self._cur_acked == self.acked
        dst = self._hal.open(tmp, "wb")
        try:
            dst.write(self._pack_header(base_rseq, base_time, level))
            for k in range(i, e):
                src_name = self._name(self._segno[k]) if k >= 0 else name
                sb_rseq = self._base_rseq[k] if k >= 0 else src_base
                sb_time = self._base_time[k] if k >= 0 else base_time
                shift = sb_time - base_time  # once per source: times are long ints on MicroPython
                hi = self._last[k] if k >= 0 else -1
                # Slots before `passed` are behind the read cursor (their damage was counted).
                passed = 0
                if k < 0:
                    passed = 0x3FFFFFFF
                elif cur_ok and k < self._cur_i:
                    passed = 0x3FFFFFFF
                elif cur_ok and k == self._cur_i:
                    passed = self._cur_off
                off = SEG_HDR
                src = self._hal.open(src_name, "rb")
                try:
                    src.seek(SEG_HDR)
                    while src.readinto(r) == REC_SIZE:
                        off += REC_SIZE
                        word = r[0] << 8 | r[1]
                        dt = r[2] << 8 | r[3]
                        rseq = sb_rseq + (word & _OFF_MASK)
                        if not self._valid_rec() or rseq <= last or (hi >= 0 and rseq > hi):
                            if off - REC_SIZE >= passed:
                                bad += 1
                            continue
                        last = rseq
                        if rseq <= drop_upto:
                            continue
                        if not word & _EVENT:
                            keep = pos_index % keep_every == 0
                            pos_index += 1
                            if not keep:
                                thinned += 1
                                if rseq > floor:
                                    esc += 1
                                continue
                        dt += shift
                        if dt < 0 or dt > 0xFFFF:
                            ok = False
                            break
                        struct.pack_into(">HH", r, 0, (word & _EVENT) | (rseq - base_rseq), dt)
                        self._seal_rec()
                        dst.write(r)
                        kept += 1
                        kept_last = rseq
                finally:
                    src.close()
                if not ok:
                    break
            dst.flush()
        finally:
            dst.close()
        if not ok:
            self._hal.remove(tmp)
            return -1
        if esc:
            self._save_thin(segno, esc)  # intent: counted once the rename is done
        self._hal.rename(tmp, name)
        if esc:
            self.esc_thinned += esc
            self._save_thin(0, 0)
        self._copy_thinned = thinned
        self._copy_last = kept_last
        self.corrupt += bad
        return kept

    def _forget(self, i):
        for lst in (self._segno, self._base_rseq, self._base_time, self._last, self._count, self._thin):
            lst.pop(i)
        # Keep the cursor on the same record. A segment removed under the cursor was wholly
        # released (the cursor stood at its end): the next segment's first record follows.
        # Rewrites derive the cursor again after this (_count_pending).
        self._nx_ok = False
        if i < self._cur_i:
            self._cur_i -= 1
        elif i == self._cur_i:
            self._cur_off = SEG_HDR

    # ---- sending and release ------------------------------------------------------------------

    def _find_cursor(self):
        # One scan: the first valid record with rseq > acked (at recovery and after a rewrite;
        # otherwise peek and release keep the cursor). Reads at most the records before it in
        # the one segment holding the release point. Bad records it passes count as `corrupt`
        # unless the old cursor had passed them already (all count at recovery: no old cursor).
        self._nx_ok = False
        old_ok = self._cur_acked == self.acked
        old_i = self._cur_i
        old_off = self._cur_off
        self._cur_acked = self.acked
        acked = self.acked
        n = len(self._segno)
        for i in range(n):
            if self._last[i] <= acked:
                continue
            if self._base_rseq[i] > acked:
                self._cur_i = i
                self._cur_off = SEG_HDR
                return
            f = self._hal.open(self._name(self._segno[i]), "rb")
            try:
                off = SEG_HDR
                f.seek(off)
                base = self._base_rseq[i]
                hi = self._last[i]
                while f.readinto(self._rec) == REC_SIZE:
                    if self._valid_rec():
                        rseq = base + (self._word() & _OFF_MASK)
                        if rseq > hi:
                            if not old_ok or i > old_i or (i == old_i and off >= old_off):
                                self.corrupt += 1
                        elif rseq > acked:
                            self._cur_i = i
                            self._cur_off = off
                            return
                    elif not old_ok or i > old_i or (i == old_i and off >= old_off):
                        self.corrupt += 1
                    off += REC_SIZE
            finally:
                f.close()
        # Nothing unreleased: the end of the head segment (where the next record goes).
        if n:
            self._cur_i = n - 1
            self._cur_off = SEG_HDR + self._count[n - 1] * REC_SIZE
        else:
            self._cur_i = 0
            self._cur_off = SEG_HDR

    def peek(self, max_count=MAX_BATCH):
        # Describe the next thing to send, starting at the first unreleased record:
        #   KIND_EVENT: one event in ev_* and b_first == b_last == its rseq;
        #   KIND_RECORDS: b_count positions with consecutive rseq from b_first, as 16-byte wire
        #                 records in self.batch[0:16*b_count], times relative to b_base_time;
        #   KIND_NONE: nothing pending.
        # A batch stops at an event, at a gap in rseq (thinning), at max_count and where dt would
        # not fit in a u16. Reads start at the cursor: b_count records, plus the event or
        # out-of-sequence record that ended the batch, plus any corrupt ones on the way.
        self.b_kind = KIND_NONE
        self.b_count = 0
        self._nx_ok = False
        if self.pending == 0:
            return KIND_NONE
        if self._cur_acked != self.acked:
            self._find_cursor()
        if max_count > MAX_BATCH:
            max_count = MAX_BATCH
        n = len(self._segno)
        i = self._cur_i
        off = self._cur_off
        # Standing at the end of a closed segment: move the cursor on to the next (no reads).
        while i < n - 1 and off >= SEG_HDR + self._count[i] * REC_SIZE:
            i += 1
            off = SEG_HDR
        self._cur_i = i
        self._cur_off = off
        acked = self.acked
        r = self._rec
        f = None
        prev = 0
        slots = 0  # slots read from the cursor
        bad = 0  # ... of them bad (damaged): counted in `corrupt` when the cursor passes them
        try:
            while i < n:
                if f is None:
                    if off >= SEG_HDR + self._count[i] * REC_SIZE:
                        i += 1  # end of this segment (known from the table: no read)
                        off = SEG_HDR
                        continue
                    f = self._hal.open(self._name(self._segno[i]), "rb")
                    f.seek(off)
                if off >= SEG_HDR + self._count[i] * REC_SIZE or f.readinto(r) != REC_SIZE:
                    f.close()
                    f = None
                    i += 1
                    off = SEG_HDR
                    continue
                off += REC_SIZE
                word = self._word()
                rseq = self._base_rseq[i] + (word & _OFF_MASK)
                damaged = not self._valid_rec() or rseq > self._last[i]
                if damaged or rseq <= acked:
                    if self.b_count:
                        # Released with the batch (nothing to send in it): the ACK of b_last
                        # moves the cursor past it too.
                        slots += 1
                        if damaged:
                            bad += 1
                        self._nx_i = i
                        self._nx_off = off
                        self._nx_slots = slots
                        self._nx_bad = bad
                        continue
                    # Nothing to send before it: the cursor moves past it for good, so a
                    # retransmission does not read it again (nor count it again).
                    self._cur_i = i
                    self._cur_off = off
                    self.pending -= 1
                    if damaged:
                        self.corrupt += 1
                    continue
                slots += 1
                t = self._base_time[i] + (r[2] << 8 | r[3])
                if word & _EVENT:
                    if self.b_count:
                        break
                    self.b_kind = KIND_EVENT
                    self.b_first = self.b_last = rseq
                    self.ev_time = t
                    self.ev_lat, self.ev_lon, self.ev_value, self.ev_code, self.ev_status = \
                        struct.unpack(">iiIBB", r[4:18])
                    self._nx_i = i
                    self._nx_off = off
                    self._nx_slots = slots
                    self._nx_bad = bad
                    self._nx_ok = True
                    return KIND_EVENT
                if self.b_count:
                    dt = t - self.b_base_time
                    if rseq != prev + 1 or dt < 0 or dt > 0xFFFF:
                        break
                else:
                    self.b_first = rseq
                    self.b_base_time = t
                    dt = 0
                o = self.b_count * WIRE_REC
                struct.pack_into(">H", self.batch, o, dt)
                self._batch_mv[o + 2:o + WIRE_REC] = self._rec_wire
                self.b_count += 1
                self.b_last = rseq
                prev = rseq
                self._nx_i = i
                self._nx_off = off
                self._nx_slots = slots
                self._nx_bad = bad
                if self.b_count >= max_count:
                    break
        finally:
            if f is not None:
                f.close()
        if self.b_count:
            self.b_kind = KIND_RECORDS
            self._nx_ok = True
        return self.b_kind

    def release(self, committed):
        # The gateway committed every record up to `committed` that was sent. Returns the number
        # of records released.
        if committed >= self.next_rseq:
            committed = self.next_rseq - 1
        if committed <= self.acked:
            return 0
        if self._cur_acked != self.acked:
            self._find_cursor()  # clears _nx_ok
        if not (self._nx_ok and committed == self.b_last):
            # Not exactly what was last peeked (a partial ACK, the ACK of an earlier
            # transmission, or no peek): walk from the cursor.
            self._nx_slots = self._walk(committed)
        released = self._nx_slots
        self._acked_ctr.save(committed)  # first: a cut here leaves the old state on flash
        self.corrupt += self._nx_bad
        self.acked = committed
        self._cur_i = self._nx_i
        self._cur_off = self._nx_off
        self._cur_acked = committed
        self._nx_ok = False
        self.pending -= released
        self._drop_released()
        if self._episode and self.stored < self.capacity // 2:
            self._episode = False
            if self._unreported:
                self._pack_event(EVENT_JOURNAL_OVERFLOW, self._ov_lat, self._ov_lon,
                                 self._ov_status, self._unreported)
                self._unreported = 0
                self._append(self._last_t, _EVENT)  # time of the newest record: no clock here
        return released

    def _walk(self, committed):
        # From the cursor to the first valid record with rseq > committed (or the end): sets
        # _nx_i/_nx_off there and returns the slots passed. Segments wholly at or below
        # `committed` are passed on the segment table alone; only the last one is read.
        n = len(self._segno)
        i = self._cur_i
        off = self._cur_off
        passed = 0
        bad = 0
        while i < n:
            end = SEG_HDR + self._count[i] * REC_SIZE
            if self._last[i] <= committed:
                passed += (end - off) // REC_SIZE
                if i == n - 1:
                    off = end
                    break
                i += 1
                off = SEG_HDR
                continue
            f = self._hal.open(self._name(self._segno[i]), "rb")
            try:
                f.seek(off)
                base = self._base_rseq[i]
                hi = self._last[i]
                while off < end and f.readinto(self._rec) == REC_SIZE:
                    if self._valid_rec():
                        rseq = base + (self._word() & _OFF_MASK)
                        if rseq > hi:
                            bad += 1
                        elif rseq > committed:
                            break
                    else:
                        bad += 1
                    off += REC_SIZE
                    passed += 1
            finally:
                f.close()
            break
        self._nx_i = i
        self._nx_off = off
        self._nx_bad = bad
        return passed

    def _drop_released(self):
        # Delete whole segments the gateway has committed. The head stays (it is being appended
        # to) unless it is full.
        while len(self._segno) > 1 and self._last[0] <= self.acked:
            self._hal.remove(self._name(self._segno[0]))
            self.stored -= self._count[0]
            self._forget(0)
