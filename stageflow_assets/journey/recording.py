"""A stage's share of the journey's record: items appended in memory, written once per step.

Sequence numbers continue across stages: each stage starts where its upstream stage stopped
(`next_seq` in the upstream manifest's details). On success the items are one of the stage's
outputs (`record_items.jsonl`, with its checksum in the manifest); when the step fails they are
written beside `manifest.failed.json`, ending with a `pipeline_error` item. Recording never
raises into the stage: a failed write is a warning.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from stageflow_assets.core.manifest import StageManifest
from stageflow_assets.core.stage import StageWriter
from stageflow_assets.records.tracker import ITEMS_FILE, Tracker

PREVIEW_ITEMS = 40


def next_seq_after(upstream: StageManifest | None) -> int:
    if upstream is None:
        return 1
    return int(upstream.details.get("next_seq") or 1)


class StageRecording:
    def __init__(self, stage: str, start_seq: int, run_id: str) -> None:
        self.stage = stage
        self.tracker = Tracker(start_seq=start_seq, run_id=run_id)

    def add(self, kind: str, **fields: Any) -> None:
        self.tracker.add(kind, self.stage, **fields)

    def transition(self, from_stage: str) -> None:
        self.add("stage_transition", content=f"stage {from_stage} → stage {self.stage}",
                 metadata={"from": from_stage, "to": self.stage})

    @contextlib.contextmanager
    def around(self, out: StageWriter) -> Iterator["StageRecording"]:
        """Write the items once, when the stage body ends (either way)."""
        try:
            yield self
        except BaseException as exc:
            self.add("pipeline_error", content=_one_line(exc), metadata={"error": type(exc).__name__})
            try:
                self.tracker.write(out.directory)
            except OSError as write_error:
                out.log(f"record items not written: {write_error}", "warning")
            raise
        self._save(out)

    def _save(self, out: StageWriter) -> None:
        items = self.tracker.items()
        out.details.update(
            next_seq=self.tracker.next_seq, record_items=len(items),
            record=[_brief(item) for item in items[:PREVIEW_ITEMS]],
        )
        if self.tracker.dropped:
            out.warnings += [f"record item dropped: {note}" for note in self.tracker.dropped]
        target = out.output(ITEMS_FILE, kind="record_items", fmt="jsonl")
        try:
            target.write_text("".join(item.model_dump_json() + "\n" for item in items), encoding="utf-8")
        except OSError as exc:
            out.declared.pop()  # the stage's work stands without its items file
            out.warnings.append(f"record items not written: {exc}")


def _brief(item) -> dict[str, Any]:
    brief = {"seq": item.seq, "kind": item.kind}
    for name in ("stage_iteration", "output_index", "backend", "duration_s"):
        value = getattr(item, name)
        if value is not None:
            brief[name] = value
    if item.content:
        brief["content"] = item.content if len(item.content) <= 160 else item.content[:159] + "…"
    return brief


def _one_line(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return " ".join(str(message).split())[:500]
