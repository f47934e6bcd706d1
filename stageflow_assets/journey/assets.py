"""The journey's first three stages: the checked prompt, its interception, each output's clearance.

Every asset is partitioned by `journey` (one partition per execution of a prompt); the media of
stage 4 are in media_assets.py. Stages 1 and 3 carry a blocking check each (checks.py).
"""


from dataclasses import asdict
from typing import TypeVar

import dagster as dg
from pydantic import BaseModel

from stageflow_assets.core.errors import BadInputError
from stageflow_assets.core.manifest import StageManifest
from stageflow_assets.core.paths import StagePaths
from stageflow_assets.core.job_records import JOB_FILE
from stageflow_assets.core.stage import (
    PROVIDER_RETRY, StageInput, StageWriter, one_line_failures, run_stage, stage_input,
)
from stageflow_assets.core.stage_store import StageStore
from stageflow_assets.journey import stage_dirs
from stageflow_assets.journey.checks import (
    outputs_cleared_result,
    outputs_cleared_spec,
    section_86a_result,
    section_86a_spec,
)
from stageflow_assets.journey.interception import intercept
from stageflow_assets.journey.models import ClearanceDoc, InterceptionDoc, JourneyJob, PromptDoc
from stageflow_assets.journey.partitions import journey_partitions
from stageflow_assets.journey.previews import clearance_preview, interception_preview, prompt_preview
from stageflow_assets.journey.recording import StageRecording, next_seq_after
from stageflow_assets.journey.registry import load_journey
from stageflow_assets.journey.resources import JourneyBackends, JourneySettings
from stageflow_assets.journey.screening import clear_outputs, screen_prompt
from stageflow_assets.providers.chat import ChatEndpoint
from stageflow_assets.providers.llm import ClaudeResource
from stageflow_assets.providers.translate import ApertiumTranslator

M = TypeVar("M", bound=BaseModel)


def job_input(paths: StagePaths, job: JourneyJob) -> StageInput:
    return StageInput(paths.job_dir(stage_dirs.DOMAIN, job.job) / JOB_FILE, kind="journey")


def read_doc(paths: StagePaths, manifest: StageManifest, kind: str, model: type[M]) -> M:
    return model.model_validate_json(paths.absolute(manifest.output(kind).path).read_text(encoding="utf-8"))


def write_doc(out: StageWriter, name: str, kind: str, doc: BaseModel) -> None:
    out.output(name, kind=kind, fmt="json").write_text(doc.model_dump_json(indent=1), encoding="utf-8")


def refuse_after_block(job: str, stage: int, summary: str) -> BadInputError:
    return BadInputError(f"journey {job} was blocked at stage {stage} ({summary}): nothing after it runs",
                         blocked_at=stage)


@dg.asset(
    partitions_def=journey_partitions, group_name=stage_dirs.DOMAIN, code_version="1", kinds={"python", "apertium"},
    retry_policy=PROVIDER_RETRY, metadata=stage_dirs.PROMPT.metadata,
    check_specs=[section_86a_spec("journey_prompt")],
)
@one_line_failures
def journey_prompt(context: dg.AssetExecutionContext, storage: StageStore, translator: ApertiumTranslator,
                   claude: ClaudeResource, chat: ChatEndpoint, journey_settings: JourneySettings):
    """Stage 1: the journey's prompt in its working language, checked for §86a StGB content.

    Partitioned by journey (one execution of a prompt). The prompt as written is checked before
    it is translated (so a prompt no backend can translate is still checked), then its
    translation; a match blocks the journey (`section_86a_clear` fails, nothing downstream runs).
    Translation: Apertium where it has the pair, else the LLM if one is configured.
    """
    paths = storage.paths
    job = load_journey(paths, str(context.partition_key))
    backends = JourneyBackends(translator, claude, chat, journey_settings)

    def work(out: StageWriter) -> None:
        with StageRecording("1", 1, context.run.run_id).around(out) as rec:
            doc = screen_prompt(job, backends.translators, backends.confirm, rec)
            write_doc(out, "prompt.json", "prompt", doc)
        out.details.update(blocked=doc.blocked, what_matched=doc.blocked_summary or "nothing",
                           working_text=doc.text or "", language=job.lang, work_lang=job.work_lang)
        if doc.translation is not None:
            out.details["translation_backend"] = doc.translation["backend"]
        out.preview = prompt_preview(doc)

    result = run_stage(context, paths, stage_dirs.PROMPT, inputs=[job_input(paths, job)],
                       config={"language": job.lang, "work_lang": job.work_lang, **backends.parameters()},
                       provider_versions=translator.versions(), work=work)
    yield result
    yield section_86a_result(read_doc(paths, result.value, "prompt", PromptDoc))


@dg.asset(
    partitions_def=journey_partitions, group_name=stage_dirs.DOMAIN, code_version="1", kinds={"python", "apertium"},
    retry_policy=PROVIDER_RETRY, metadata=stage_dirs.INTERCEPTION.metadata,
)
@one_line_failures
def intercepted_prompt(context: dg.AssetExecutionContext, storage: StageStore, translator: ApertiumTranslator,
                       claude: ClaudeResource, chat: ChatEndpoint, journey_settings: JourneySettings,
                       journey_prompt: StageManifest):
    """Stage 2: the prompt after its interception, with every iteration kept.

    Stille Post passes the text through up to 8 successive translations (the languages from
    `--via`, else chosen by the journey's seed) and back into the working language; a
    perspective (bauhaus, poem, ...) is one LLM rewrite. Iterations run inside this one step
    (a Dagster graph cannot loop); each is an `interception_iteration` item of the record.
    """
    paths = storage.paths
    job = load_journey(paths, str(context.partition_key))
    source = stage_input(paths, journey_prompt, "prompt")
    backends = JourneyBackends(translator, claude, chat, journey_settings)

    def work(out: StageWriter) -> None:
        prompt = PromptDoc.model_validate_json(source.path.read_text(encoding="utf-8"))
        if prompt.blocked or prompt.text is None:
            raise refuse_after_block(job.job, 1, prompt.blocked_summary)
        with StageRecording("2", next_seq_after(journey_prompt), context.run.run_id).around(out) as rec:
            rec.transition("1")
            hops = intercept(prompt.text, job.interception, job.work_lang, backends.translators,
                             iterations=job.iterations, via=job.via or None, seed=job.seed)
            for hop in hops:
                rec.add("interception_iteration", stage_iteration=hop.index, content=hop.text,
                        parameters={"source": hop.source, "target": hop.target, **hop.parameters},
                        backend=hop.backend, model=hop.model, duration_s=hop.duration_s, metadata=hop.metadata)
            rec.add("interception_final", content=hops[-1].text,
                    metadata={"interception": job.interception, "iterations": len(hops)})
            doc = InterceptionDoc(input=prompt.text, interception=job.interception,
                                  hops=[asdict(h) for h in hops], final=hops[-1].text)
            write_doc(out, "interception.json", "interception", doc)
        out.details.update(interception=job.interception, iterations=len(hops), final_text=doc.final,
                           chain=" → ".join([hops[0].source] + [h.target for h in hops]))
        out.preview = interception_preview(doc)

    return run_stage(context, paths, stage_dirs.INTERCEPTION, inputs=[source],
                     config={"interception": job.interception, "iterations": job.iterations, "via": job.via,
                             "seed": job.seed, "work_lang": job.work_lang, **backends.parameters()},
                     provider_versions=translator.versions(), work=work)


@dg.asset(
    partitions_def=journey_partitions, group_name=stage_dirs.DOMAIN, code_version="1", kinds={"python"},
    retry_policy=PROVIDER_RETRY, metadata=stage_dirs.OUTPUT_CLEARANCE.metadata,
    check_specs=[outputs_cleared_spec("output_clearance")],
)
@one_line_failures
def output_clearance(context: dg.AssetExecutionContext, storage: StageStore, translator: ApertiumTranslator,
                     claude: ClaudeResource, chat: ChatEndpoint, journey_settings: JourneySettings,
                     intercepted_prompt: StageManifest):
    """Stage 3: each output configuration's safety verdict at the journey's level.

    One verdict per `--output` (kids, youth, adult or research: the stricter the level, the more
    it blocks). A blocked output blocks the journey (`outputs_cleared` fails): no media is made.
    """
    paths = storage.paths
    job = load_journey(paths, str(context.partition_key))
    source = stage_input(paths, intercepted_prompt, "interception")
    backends = JourneyBackends(translator, claude, chat, journey_settings)

    def work(out: StageWriter) -> None:
        text = InterceptionDoc.model_validate_json(source.path.read_text(encoding="utf-8")).final
        with StageRecording("3", next_seq_after(intercepted_prompt), context.run.run_id).around(out) as rec:
            rec.transition("2")
            doc = clear_outputs(text, job, backends.confirm, rec)
            write_doc(out, "clearance.json", "clearance", doc)
        out.details.update(level=job.safety, outputs=len(doc.outputs), blocked=bool(doc.blocked),
                           what_matched="; ".join(f"output {o.index}: {o.summary}" for o in doc.blocked) or "nothing")
        out.preview = clearance_preview(doc)

    result = run_stage(context, paths, stage_dirs.OUTPUT_CLEARANCE, inputs=[source],
                       config={"level": job.safety, "outputs": job.outputs, **backends.parameters()}, work=work)
    yield result
    yield outputs_cleared_result(read_doc(paths, result.value, "clearance", ClearanceDoc))
