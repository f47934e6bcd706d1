"""The inbox scan behind the inbox sensors: new and changed files found, a cursor that stays small.

Real files in a real directory. A test cannot set a file's ctime back, so the scans that must
treat files as old pass `margin_s=0` (no clock-step window) where the sensor has 60 s.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from stageflow_assets.core.inbox import InboxScan

SETTLE = 3.0


def put(inbox: Path, name: str, data: bytes = b"video", age: float = 60.0) -> Path:
    path = inbox / name
    path.write_bytes(data)
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def scan(inbox: Path, cursor: str | None, margin_s: float | None = 0.0, limit: int | None = None):
    """Names handed out by one tick (all of them, or `limit` like the sensor's cap) and the next cursor."""
    tick = InboxScan(inbox, cursor, settle_s=SETTLE, margin_s=margin_s)
    names = []
    for path in tick.new_files():
        if limit is not None and len(names) >= limit:
            break
        names.append(path.name)
    return names, tick.cursor()


@pytest.fixture
def inbox(tmp_path) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    return path


def test_files_come_once_and_the_cursor_stays_small(inbox):
    for i in range(300):
        put(inbox, f"clip{i:03d}.mp4", f"{i}".encode())
    names, cursor = scan(inbox, None)
    assert sorted(names) == [f"clip{i:03d}.mp4" for i in range(300)]
    assert len(cursor) < 200, cursor  # a position, not 300 names
    assert scan(inbox, cursor) == ([], cursor)


def test_the_cap_leaves_the_rest_for_the_next_tick(inbox):
    for i in range(25):
        put(inbox, f"c{i:02d}.mp4")
    seen, cursor = [], None
    for _ in range(3):
        names, cursor = scan(inbox, cursor, limit=10)
        seen += names
    assert seen == [f"c{i:02d}.mp4" for i in range(25)]


def test_a_changed_renamed_or_touched_file_comes_again(inbox, tmp_path):
    """With the sensor's clock margin: these changes come within one clock tick of each other,
    and the margin's signatures tell them apart where the ctimes can be equal."""
    clip = put(inbox, "clip.mp4", b"first")
    _, cursor = scan(inbox, None, margin_s=None)
    clip.write_bytes(b"second")
    assert scan(inbox, cursor, margin_s=None)[0] == []  # written just now: not settled yet
    put(inbox, "clip.mp4", b"second", age=30)
    names, cursor = scan(inbox, cursor, margin_s=None)
    assert names == ["clip.mp4"]

    outside = put(tmp_path, "old.mp4", b"kept mtime", age=86400)
    os.rename(outside, inbox / "old.mp4")  # renamed in with an old mtime: its ctime is now
    names, cursor = scan(inbox, cursor, margin_s=None)
    assert names == ["old.mp4"]

    os.utime(clip, (time.time() - 20, time.time() - 20))
    assert scan(inbox, cursor, margin_s=None)[0] == ["clip.mp4"]


def test_a_file_being_written_holds_the_position_without_losing_later_files(inbox):
    put(inbox, "done1.mp4")
    growing = inbox / "growing.mp4"
    growing.write_bytes(b"half")  # mtime now: not settled
    put(inbox, "done2.mp4")
    names, cursor = scan(inbox, None)
    assert names == ["done1.mp4", "done2.mp4"]
    assert "done2.mp4" in json.loads(cursor)["handled"]  # after the position: remembered by name
    names, cursor = scan(inbox, cursor)
    assert names == []
    stamp = time.time() - 10
    os.utime(growing, (stamp, stamp))
    names, cursor = scan(inbox, cursor)
    assert names == ["growing.mp4"]
    assert json.loads(cursor)["handled"] == {}  # the position is past everything
    assert scan(inbox, cursor)[0] == []


def test_removed_files_are_forgotten(inbox):
    a = put(inbox, "a.mp4")
    put(inbox, "b.mp4")
    _, cursor = scan(inbox, None, margin_s=60)
    assert set(json.loads(cursor)["handled"]) == {"a.mp4", "b.mp4"}  # within the clock margin
    a.unlink()
    _, cursor = scan(inbox, cursor, margin_s=60)
    assert set(json.loads(cursor)["handled"]) == {"b.mp4"}


def test_a_clock_stepped_back_does_not_hide_new_files(inbox):
    """A position ahead of the files' ctimes, as after the wall clock stepped back by 5 s."""
    put(inbox, "before.mp4")
    ahead = time.time_ns() + 5_000_000_000
    cursor = json.dumps({"mark": [ahead, "zzz"], "handled": {}})
    names, cursor = scan(inbox, cursor, margin_s=60)
    assert names == ["before.mp4"]
    assert scan(inbox, cursor, margin_s=60)[0] == []


def test_the_cursor_of_earlier_releases_is_read(inbox):
    """Before the position the cursor named every file: `{name: "size:mtime_ns"}`."""
    for i in range(4):
        put(inbox, f"n{i}.mp4", f"{i}".encode())
    old = put(inbox, "old.mp4")  # arrived last, known to the old cursor
    stat = old.stat()
    legacy = json.dumps({"old.mp4": f"{stat.st_size}:{stat.st_mtime_ns}", "gone.mp4": "1:2"})
    names, cursor = scan(inbox, legacy)
    assert names == [f"n{i}.mp4" for i in range(4)]
    assert set(json.loads(cursor)) == {"mark", "handled"}
    assert scan(inbox, cursor)[0] == []
    # capped before reaching it: the next tick, without the old cursor, still knows it
    names, cursor = scan(inbox, legacy, limit=2)
    assert names == ["n0.mp4", "n1.mp4"]
    assert scan(inbox, cursor)[0] == ["n2.mp4", "n3.mp4"]
