"""The prompts inbox, and the sensors that write a journey's record when its run ends.

A file dropped into `$STAGEFLOW_HOME/inbox/prompts` starts a journey: `NAME.txt` holds the prompt
(in English, or in the language its name ends with: `castle.de.txt`), `NAME.json` an object with
the prompt and the command's options: {"prompt": "...", "lang": "de", "work_lang": "en",
"interception": "stille-post", "iterations": 6, "via": ["es", "pt"], "outputs": ["image",
"music:20s"], "seed": 7, "safety": "kids"}. The journey key comes from the file (name and
content), so dropping the same file again starts nothing new; the seed, unless given, comes from
the content too.
"""


import json
import re
from pathlib import Path
from typing import Any

import dagster as dg

from stageflow_assets.core.errors import BadInputError
from stageflow_assets.core.inbox import InboxScan
from stageflow_assets.core.keys import sampled_content_hash
from stageflow_assets.core.stage import JOB_TAG, SOURCE_TAG
from stageflow_assets.core.stage_store import StageStore
from stageflow_assets.journey.jobs import journey_job
from stageflow_assets.journey.partitions import journey_partitions
from stageflow_assets.journey.record_files import write_journey_record
from stageflow_assets.journey.registry import inbox_journey_key, register_journey

INBOX = "prompts"
SUFFIXES = {".txt", ".json"}
MAX_NEW_PER_TICK = 10
SETTLE_SECONDS = 3.0
MAX_FILE_BYTES = 64 * 1024
OPTION_NAMES = {"prompt", "lang", "work_lang", "interception", "iterations", "via", "outputs", "seed", "safety"}
_LANG_SUFFIX = re.compile(r"^.+\.(?P<lang>[a-z]{2,3})$")


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(part) for part in value or []]


def options_from_file(path: Path) -> dict[str, Any]:
    """The journey options a prompt file stands for (BadInputError: what is wrong with it)."""
    if path.stat().st_size > MAX_FILE_BYTES:
        raise BadInputError(f"{path.name}: larger than {MAX_FILE_BYTES // 1024} KiB; a prompt file holds one prompt")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".txt":
        found = _LANG_SUFFIX.match(path.stem)
        options: dict[str, Any] = {"prompt": text.strip(), "lang": found["lang"] if found else "en"}
    else:
        try:
            options = json.loads(text)
        except ValueError as exc:
            raise BadInputError(f"{path.name}: not JSON ({exc})") from exc
        if not isinstance(options, dict):
            raise BadInputError(f"{path.name}: a JSON object with a \"prompt\" is expected")
        unknown = sorted(set(options) - OPTION_NAMES)
        if unknown:
            raise BadInputError(f"{path.name}: unknown option(s) {', '.join(unknown)}; "
                                f"known: {', '.join(sorted(OPTION_NAMES))}")
        if "via" in options:
            options["via"] = _as_list(options["via"])
        if "outputs" in options:
            options["outputs"] = _as_list(options["outputs"])
    if options.get("seed") is None:
        options["seed"] = int(sampled_content_hash(path), 16) % 2**31
    return options


@dg.sensor(
    job=journey_job, minimum_interval_seconds=10, default_status=dg.DefaultSensorStatus.RUNNING,
    description="Registers each new prompt file in the prompts inbox as a journey and requests its run.",
)
def prompts_inbox_sensor(context: dg.SensorEvaluationContext, storage: StageStore):
    inbox = storage.paths.inbox(INBOX)
    inbox.mkdir(parents=True, exist_ok=True)
    scan = InboxScan(inbox, context.cursor, settle_s=SETTLE_SECONDS)
    new_keys: list[str] = []
    requests: list[dg.RunRequest] = []
    for path in scan.new_files():
        if len(new_keys) >= MAX_NEW_PER_TICK:
            break  # this file and the rest: next tick
        if path.suffix.lower() not in SUFFIXES:
            continue
        try:
            key = inbox_journey_key(path)
            if key in new_keys or context.instance.has_dynamic_partition(journey_partitions.name, key):
                continue  # the same prompt file again: that journey exists
            register_journey(storage.paths, key, source="inbox", original_name=path.name, **options_from_file(path))
        except (BadInputError, OSError, UnicodeDecodeError) as exc:
            context.log.warning(f"prompts inbox: skipping {path.name}: {getattr(exc, 'message', exc)}")
            continue
        new_keys.append(key)
        requests.append(dg.RunRequest(partition_key=key, run_key=key, tags={JOB_TAG: key, SOURCE_TAG: "inbox"}))
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[journey_partitions.build_add_request(new_keys)] if new_keys else [],
        cursor=scan.cursor(),
    )


def journey_record_sensor(status: dg.DagsterRunStatus) -> dg.RunStatusSensorDefinition:
    """Writes the journey's record (JSON) when one of its runs ends with `status`."""
    name = f"journey_record_on_{status.value.lower()}"

    @dg.run_status_sensor(
        # Dagster's default interval: a record minutes late costs nothing, while every tick costs
        # the daemon ~26 storage connections (three of these sensors, each ticking alone)
        name=name, run_status=status, monitored_jobs=[journey_job], minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Writes a journey's research record (JSON, in its record/ dir) when its run ends "
                    f"{status.value}.",
    )
    def _sensor(context: dg.RunStatusSensorContext, storage: StageStore):
        key = context.dagster_run.tags.get("dagster/partition")
        if not key:
            return dg.SkipReason(f"run {context.dagster_run.run_id} has no journey partition")
        try:
            path = write_journey_record(context.instance, storage.paths, key)
        except Exception as exc:  # noqa: BLE001 - a record that cannot be written is said, not retried forever
            context.log.warning(f"journey {key}: record not written: {type(exc).__name__}: {exc}")
            return dg.SkipReason(f"journey {key}: record not written ({type(exc).__name__})")
        context.log.info(f"journey {key}: record written to {path}")
        return None

    return _sensor


journey_record_sensors = [journey_record_sensor(status) for status in (
    dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)]
