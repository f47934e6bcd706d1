"""Recording items as they happen: an in-memory append, written once per step.

`Tracker.add` never raises into the pipeline (a bad item is kept as a note of what went
wrong) and never blocks: no I/O until `write`, which the stage calls once at its end.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from stageflow_assets.records.models import RecordItem

ITEMS_FILE = "record_items.jsonl"


class Tracker:
    def __init__(self, start_seq: int = 1, run_id: str | None = None) -> None:
        self._items: list[RecordItem] = []
        self._next = start_seq
        self._lock = threading.Lock()
        self.run_id = run_id
        self.dropped: list[str] = []

    def add(self, kind: str, stage: str, **fields: Any) -> RecordItem | None:
        with self._lock:
            seq = self._next
            self._next += 1
        try:
            item = RecordItem(seq=seq, time=datetime.now(timezone.utc), kind=kind, stage=stage,
                              run_id=self.run_id, **fields)
        except Exception as exc:  # a recording mistake must not stop the work it records
            self.dropped.append(f"{kind} #{seq}: {exc.__class__.__name__}: {str(exc).splitlines()[0]}")
            return None
        with self._lock:
            self._items.append(item)
        return item

    @property
    def next_seq(self) -> int:
        return self._next

    def items(self) -> list[RecordItem]:
        with self._lock:
            return list(self._items)

    def write(self, directory: Path) -> Path:
        """The step's items as JSON lines in its stage dir (replaced whole, never appended)."""
        path = directory / ITEMS_FILE
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(item.model_dump_json() + "\n" for item in self.items()), encoding="utf-8")
        tmp.replace(path)
        return path


def read_items(path: Path) -> list[RecordItem]:
    if not path.exists():
        return []
    return [RecordItem.model_validate(json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]
