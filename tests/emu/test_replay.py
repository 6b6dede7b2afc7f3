"""Replaying the real receiver captures in tests/data/nmea into the firmware's parser."""

from __future__ import annotations

from pathlib import Path

import pytest

from navseal.emu.replay import NmeaReplay, ReplayError
from navseal_fw.nmea import NmeaParser

DATA = Path(__file__).resolve().parents[1] / "data" / "nmea"
LOGS = sorted(DATA.glob("*.nmea"))
T = 1_795_000_000


@pytest.mark.parametrize("path", LOGS, ids=[p.stem for p in LOGS])
def test_replay_feeds_epochs_that_the_parser_takes(path):
    replay = NmeaReplay(path, loop=False)
    p = NmeaParser()
    fixes = 0
    for i in range(len(replay)):
        fixes += p.feed(replay.next_epoch(T + i))
    assert replay.next_epoch(T) is None
    if fixes:  # retimed: the fixes carry the replay clock, not the recording's date
        assert T <= p.fix.time < T + len(replay) + 1


def test_replay_keeps_damaged_sentences_damaged():
    path = DATA / "gps320fw-garbage-checksum.nmea"
    if not path.exists():
        pytest.fail("capture missing from tests/data/nmea")
    raw, retimed = NmeaParser(), NmeaParser()
    for chunk in NmeaReplay(path, retime=False):
        raw.feed(chunk)
    r = NmeaReplay(path, loop=False)
    for i in range(len(r)):
        retimed.feed(r.next_epoch(T + i))
    assert retimed.crc_fails == raw.crc_fails > 10
    assert retimed.sentences == raw.sentences


def test_replay_errors(tmp_path):
    with pytest.raises(ReplayError, match="missing.nmea"):
        NmeaReplay(tmp_path / "missing.nmea")
    empty = tmp_path / "empty.nmea"
    empty.write_text("# only a comment\n$GPGSV,1,1,00*79\n")
    with pytest.raises(ReplayError, match="no RMC"):
        NmeaReplay(empty)


def test_the_captures_ship_with_the_repo():
    assert len(LOGS) == 8
