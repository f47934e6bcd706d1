"""The record as a Workflow Run Crate (Provenance Run Crate profile, `rocrate`), zipped.

The job is the workflow run (a `CreateAction` whose instrument is the workflow); each step (a
journey stage, a subtitle or vocabulary stage run) is a `CreateAction` of its own with its tool,
inputs (`object`), outputs (`result`), times and parameters (`PropertyValue`s), tied to the
workflow's `HowToStep` by a `ControlAction`; the engine's `OrganizeAction` holds them together.
Media files still on disk as recorded travel inside the crate, under `files/`.
"""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from datetime import datetime, timedelta, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

from rocrate.model.contextentity import ContextEntity
from rocrate.model.computerlanguage import ComputerLanguage
from rocrate.model.preview import Preview
from rocrate.rocrate import ROCrate

from stageflow_assets.core.keys import slug
from stageflow_assets.core.paths import StagePaths
from stageflow_assets.records import report
from stageflow_assets.records.crate_preview import preview_html
from stageflow_assets.records.models import FileRef, Record, RecordItem
from stageflow_assets.records.report import FileCheck, Step

PROFILES = (  # (id, name, version): the root dataset conforms to each
    ("https://w3id.org/ro/wfrun/process/0.5", "Process Run Crate", "0.5"),
    ("https://w3id.org/ro/wfrun/workflow/0.5", "Workflow Run Crate", "0.5"),
    ("https://w3id.org/ro/wfrun/provenance/0.5", "Provenance Run Crate", "0.5"),
    ("https://w3id.org/workflowhub/workflow-ro-crate/1.0", "Workflow RO-Crate", "1.0"),
)
WORKFLOW_TYPES = ["File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"]
WFRUN_CONTEXT = "https://w3id.org/ro/terms/workflow-run/context"
MAX_FILE_BYTES = 512 * 1024 * 1024  # larger files are described, not copied


def _iso(moment: datetime) -> str:
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).isoformat()


def _span(items: list[RecordItem]) -> tuple[str, str]:
    start = min(i.time for i in items)
    end = max(i.time + timedelta(seconds=i.duration_s or 0) for i in items)
    return _iso(start), _iso(end)


_STATUS = {"success": "CompletedActionStatus", "running": "ActiveActionStatus"}


class _Builder:
    """One crate from one record: entities are made once and referred to by id."""

    def __init__(self, record: Record, paths: StagePaths) -> None:
        self.record, self.check = record, FileCheck(paths)
        self.crate = ROCrate(version="1.1")
        self.crate.metadata.extra_contexts.append(WFRUN_CONTEXT)
        self.files: dict[tuple[str, str | None], Any] = {}
        self.counter = 0

    def entity(self, prefix: str, properties: dict[str, Any], fixed_id: str | None = None) -> ContextEntity:
        self.counter += 1
        identifier = fixed_id or f"#{prefix}-{self.counter}"
        return self.crate.add(ContextEntity(self.crate, identifier, properties=properties))

    def file(self, ref: FileRef):
        """The crate's entity for a recorded file: the file itself when it is still as recorded."""
        key = (ref.path, ref.sha256)
        if key not in self.files:
            path = self.check.resolve(ref)
            props = {"name": ref.path, "encodingFormat": report.media_type(ref)}
            if ref.sha256:
                props["sha256"] = ref.sha256
            if ref.bytes is not None:
                props["contentSize"] = str(ref.bytes)
            if path is not None and path.stat().st_size <= MAX_FILE_BYTES:
                props["sha256"] = self.check.sha256(path)
                inside = ref.path if not Path(ref.path).is_absolute() else f"external/{props['sha256'][:8]}-{path.name}"
                self.files[key] = self.crate.add_file(path, dest_path=f"files/{inside}", properties=props)
            else:
                props["description"] = ("not in the crate: larger than the crate takes" if path is not None
                                        else "not in the crate: no longer on disk as recorded")
                self.files[key] = self.entity("file", {"@type": "CreativeWork", **props})
        return self.files[key]

    def values(self, pairs: list[tuple[str, Any]]) -> list[ContextEntity]:
        def scalar(value: Any) -> Any:
            plain_number = isinstance(value, (int, float)) and not isinstance(value, bool)
            return value if plain_number or isinstance(value, str) else report.plain(value)

        return [self.entity("pv", {"@type": "PropertyValue", "name": name, "value": scalar(value)})
                for name, value in pairs]

    def root(self) -> None:
        record, root = self.record, self.crate.root_dataset
        root["name"] = f"{record.title} ({record.domain} {record.key})"
        root["description"] = f"stageflow research record of {record.domain} job {record.key}: status {record.status}"
        root["datePublished"] = _iso(datetime.now(timezone.utc))
        for profile_id, name, ver in PROFILES:
            root.append_to("conformsTo", self.crate.add(ContextEntity(self.crate, profile_id, properties={
                "@type": ["CreativeWork", "Profile"], "name": name, "version": ver})))

    def workflow(self, steps: list[Step]):
        record, crate = self.record, self.crate
        language = crate.add(ComputerLanguage(crate, "#dagster", properties={
            "name": "Dagster", "url": {"@id": "https://dagster.io"}, "version": version("dagster")}))
        workflow = crate.add_workflow(io.StringIO(_workflow_description(record, steps)),
                                      dest_path=f"workflow/stageflow-{record.domain}.json", main=True, lang=language,
                                      properties={"name": f"stageflow {record.domain}", "@type": WORKFLOW_TYPES})
        for position, stage in enumerate(dict.fromkeys(s.stage for s in steps), start=1):
            workflow.append_to("step", crate.add(ContextEntity(crate, f"#howto-{slug(stage)}", properties={
                "@type": "HowToStep", "name": report.stage_title(record, stage), "position": str(position)})))
        return workflow

    def tool(self, step: Step) -> ContextEntity:
        """The stage's software, requiring each backend (with its version) its runs used."""
        tool = self.crate.get(f"#tool-{slug(step.stage)}") or self.crate.add(ContextEntity(
            self.crate, f"#tool-{slug(step.stage)}", properties={
                "@type": "SoftwareApplication", "name": f"stageflow {self.record.domain} stage {step.stage}",
                "description": report.stage_title(self.record, step.stage)}))
        for item in step.items:
            backends = {str(k): str(v) for k, v in (item.metadata.get("provider_versions") or {}).items()}
            if item.backend and item.backend not in backends:
                backends[item.backend] = ""
            for name, ver in backends.items():
                software = self.crate.add(ContextEntity(self.crate, f"#software-{slug(f'{name} {ver}')}", properties={
                    "@type": "SoftwareApplication", "name": name, **({"softwareVersion": ver} if ver else {})}))
                if software.id not in _ids(tool, "softwareRequirements"):
                    tool.append_to("softwareRequirements", software)
        return tool

    def action(self, step: Step, tool: ContextEntity) -> ContextEntity:
        """The step's CreateAction: files read and parameters as `object`, files and texts made as `result`."""
        inputs = [self.file(f) for i in step.items for f in i.files if f.role == "input"]
        outputs = [self.file(f) for i in step.items for f in i.files if f.role != "input"]
        given = [(f"#{i.seq} {i.kind}", i.content) for i in step.items if i.kind == "user_input" and i.content]
        said = [(f"#{i.seq} {i.kind}" + (f" {i.stage_iteration}" if i.stage_iteration is not None else ""), i.content)
                for i in step.items if i.content and i.kind != "user_input" and self.record.domain == "journey"]
        parameters = [(f"#{i.seq} {name}", value) for i in step.items for name, value in report.flatten(i.parameters)]
        checks = [(f"check {c.metadata.get('check')}", "passed" if c.metadata.get("passed") else "failed")
                  for c in step.checks]
        start, end = _span(step.items)
        failed = any(i.kind == "pipeline_error" or i.metadata.get("status") == "failed" for i in step.items)
        props = {"@type": "CreateAction", "name": step.title, "startTime": start, "endTime": end,
                 "actionStatus": "FailedActionStatus" if failed else "CompletedActionStatus"}
        if failed:
            props["error"] = "; ".join(i.content for i in step.items if i.kind == "pipeline_error" and i.content)
        action = self.entity("action", props)
        action["instrument"] = tool
        action["object"] = inputs + self.values(given + parameters)
        action["result"] = outputs + self.values(said + checks)
        return action

    def workflow_run(self, workflow, actions: list[ContextEntity]) -> ContextEntity:
        """The job as one run of the workflow: its options in, the files no step read again out."""
        record = self.record
        used = {e for a in actions for e in _ids(a, "object")}
        made = dict.fromkeys(e for a in actions for e in _ids(a, "result")
                             if e not in used and not e.startswith("#pv-"))
        start, end = _span(record.items) if record.items else (_iso(record.created),) * 2
        run = self.entity("run", {"@type": "CreateAction", "name": f"{record.domain} {record.key}", "startTime": start,
                                  "endTime": end, "actionStatus": _STATUS.get(record.status, "FailedActionStatus")},
                          fixed_id="#workflow-run")
        run["instrument"] = workflow
        prompt = report.prompt(record)
        run["object"] = self.values(([("prompt", prompt)] if prompt else []) + report.flatten(record.parameters))
        run["result"] = [self.crate.get(i) for i in made]
        return run


def _ids(entity: ContextEntity, name: str) -> list[str]:
    """The ids `entity[name]` refers to (rocrate hands back entities, or dicts for unknown ids)."""
    values = entity.get(name) or []
    return [v.id if hasattr(v, "id") else v["@id"] for v in (values if isinstance(values, list) else [values])]


def _workflow_description(record: Record, steps: list[Step]) -> str:
    stages = list(dict.fromkeys(s.stage for s in steps))
    return json.dumps({"name": f"stageflow {record.domain}", "engine": "Dagster software-defined assets",
                       "steps": [{"position": n, "stage": s, "title": report.stage_title(record, s)}
                                 for n, s in enumerate(stages, start=1)]}, indent=2, ensure_ascii=False)


def build_crate(record: Record, paths: StagePaths, record_json: str) -> ROCrate:
    b = _Builder(record, paths)
    crate, steps = b.crate, report.steps(record)
    b.root()
    workflow = b.workflow(steps)
    crate.add_file(io.StringIO(record_json), dest_path="record.json", properties={
        "name": "the research record (JSON)", "encodingFormat": "application/json", "about": {"@id": "./"}})
    actions, controls = [], []
    for step in steps:
        tool = b.tool(step)
        howto = crate.get(f"#howto-{slug(step.stage)}")
        howto["workExample"] = tool
        actions.append(b.action(step, tool))
        control = b.entity("control", {"@type": "ControlAction", "name": f"orchestrate {step.title}"})
        control["instrument"] = howto
        control["object"] = actions[-1]
        controls.append(control)
    run = b.workflow_run(workflow, actions)
    crate.root_dataset.append_to("mentions", run)
    engine = crate.add(ContextEntity(crate, "#engine", properties={
        "@type": "SoftwareApplication", "name": "stageflow on Dagster",
        "softwareVersion": f"stageflow {version('stageflow_assets')}, dagster {version('dagster')}"}))
    organize = b.entity("organize", {"@type": "OrganizeAction", "name": "stageflow on Dagster",
                                     "startTime": run["startTime"], "endTime": run["endTime"]}, fixed_id="#organize")
    organize["instrument"] = engine
    organize["object"] = controls
    organize["result"] = run
    embedded = {e.id for e in b.files.values() if e.id.startswith("files/")}
    crate.add(Preview(crate, source=io.StringIO(preview_html(record, steps, embedded))))
    return crate


def write(record: Record, target: Path, paths: StagePaths) -> None:
    crate = build_crate(record, paths, record.model_dump_json(indent=2))
    with tempfile.TemporaryDirectory(prefix="stageflow-crate-") as tmp:
        crate.write(tmp)
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(Path(tmp).rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(tmp).as_posix())
