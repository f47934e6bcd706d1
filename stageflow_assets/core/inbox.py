"""Which files in an inbox directory arrived or changed since a sensor's last tick.

The cursor has a constant size, not one entry per file: Dagster stores a sensor's cursor in its
state and again in every tick's row (skipped ticks are kept 7 days, the others for good), so a
cursor that names every file seen costs ~46 bytes per inbox file per tick: 10,000 files and a
tick every 10 s make ~4 GB of tick rows a day (bench/inbox_sensor_tick.py).

The cursor is a position in the inbox's arrival order, (ctime_ns, name). A file's ctime is set
when it is created, written, renamed into the inbox, touched or chmod-ed, and no copy can set it
back (`cp -p` and `rsync -a` keep mtimes, not ctimes), so every arrival and every change puts a
file after the position. Two cases keep a few files in the cursor by name:

* a file still being written (its mtime less than `settle_s` ago) holds the position; files after
  it that are handled meanwhile are remembered until the position passes them;
* a wall clock stepped back (NTP) can give a new file a ctime before the position, so files
  changed within the last `margin_s` are also compared by name and signature.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Iterator

CLOCK_MARGIN_S = 60.0
_START = (-1, "")


class InboxScan:
    """One tick's view of an inbox: `new_files()`, then `cursor()` for the next tick."""

    def __init__(self, inbox: Path, cursor: str | None, settle_s: float, margin_s: float | None = None,
                 now: float | None = None) -> None:
        self.now = time.time() if now is None else now
        self.settle_s = settle_s
        margin_s = CLOCK_MARGIN_S if margin_s is None else margin_s
        self.window_start_ns = int((self.now - margin_s) * 1e9)
        self.mark, self.handled, self.legacy = _parse(cursor)
        self.entries = _arrivals(inbox)

    def new_files(self) -> Iterator[Path]:
        """Settled files not handled yet, in arrival order. A file counts as handled once the
        loop asks for the next one: `break` before handling it leaves it (and the rest) for the
        next tick."""
        blocked = False
        for key, path, signature, stat in self.entries:
            ctime, name = key
            if key <= self.mark and ctime < self.window_start_ns:
                continue
            if self.handled.get(name) == signature or self.legacy.get(name) == f"{stat.st_size}:{stat.st_mtime_ns}":
                pass  # seen in an earlier tick
            elif self.now - stat.st_mtime < self.settle_s:
                blocked = blocked or key > self.mark  # still being written: the position waits for it
                continue
            else:
                yield path
            self.handled[name] = signature
            if not blocked and key > self.mark:
                self.mark = key

    def cursor(self) -> str:
        present = {key[1]: (key, signature) for key, _, signature, _ in self.entries}
        for key, _, signature, stat in self.entries:  # an old cursor's files the position has not passed
            if key > self.mark and self.legacy.get(key[1]) == f"{stat.st_size}:{stat.st_mtime_ns}":
                self.handled.setdefault(key[1], signature)
        keep = {}
        for name, signature in self.handled.items():
            key, current = present.get(name, (None, None))
            if current == signature and (key > self.mark or key[0] >= self.window_start_ns):
                keep[name] = signature
        return json.dumps({"mark": list(self.mark), "handled": keep}, sort_keys=True)


def _parse(cursor: str | None) -> tuple[tuple[int, str], dict[str, str], dict[str, str]]:
    """(position, handled by name, an old cursor's `{name: "size:mtime_ns"}`)."""
    data = json.loads(cursor) if cursor else {}
    if "mark" not in data:  # the cursor of stageflow before the position: one entry per file
        return _START, {}, {k: v for k, v in data.items() if isinstance(v, str)}
    ctime, name = data["mark"]
    return (int(ctime), str(name)), dict(data.get("handled") or {}), {}


def _arrivals(inbox: Path) -> list[tuple[tuple[int, str], Path, str, os.stat_result]]:
    """Visible regular files (and links to them), by (ctime_ns, name); one stat each."""
    found = []
    with os.scandir(inbox) as listing:
        for entry in listing:
            if entry.name.startswith("."):
                continue
            try:
                if not entry.is_file():
                    continue
                stat = entry.stat()
                ctime = stat.st_ctime_ns
                if entry.is_symlink():  # a link made now to an old file arrives now
                    ctime = max(ctime, entry.stat(follow_symlinks=False).st_ctime_ns)
            except OSError:  # removed while listing, or a dangling link
                continue
            # the ctime alone can repeat within a clock tick (a few ms): mtime and size tell a change too
            signature = f"{ctime}:{stat.st_mtime_ns}:{stat.st_size}"
            found.append(((ctime, entry.name), Path(entry.path), signature, stat))
    found.sort(key=lambda item: item[0])
    return found
