"""The source run starts loading the Whisper model while it probes and demuxes, only when it
will transcribe, and the transcript step then uses that model (providers/whisper_models.py)."""

from __future__ import annotations

import shutil
import threading

import dagster as dg

from stageflow_assets.core.stage import FORCE_TAG
from stageflow_assets.core.stage_store import StageStore
from stageflow_assets.definitions import defs
from stageflow_assets.providers import whisper_models
from stageflow_assets.providers.asr import WhisperASR
from stageflow_assets.subtitles.partitions import subtitle_job_partitions
from stageflow_assets.subtitles.registry import register_video


def test_the_source_run_preloads_whisper_only_when_it_transcribes(speech_video, tmp_path, instance, monkeypatch):
    video = shutil.copyfile(speech_video, tmp_path / "preload probe.mp4")
    job = register_video(StageStore().paths, video).job
    instance.add_dynamic_partitions(subtitle_job_partitions.name, [job])
    source_job = defs.resolve_job_def("subtitle_source_job")

    started: list[str] = []
    real_preload = WhisperASR.preload

    def spy(self):
        thread = real_preload(self)
        started.append(thread.name)
        return thread

    monkeypatch.setattr(WhisperASR, "preload", spy)

    def run(**kwargs) -> dg.ExecuteInProcessResult:
        result = source_job.execute_in_process(partition_key=job, instance=instance, **kwargs)
        assert result.success
        return result

    # probing alone: nothing will transcribe, nothing is loaded
    run(asset_selection=[dg.AssetKey("source_video")])
    assert started == []

    # the whole source run: the load starts in source_video, transcript uses the loaded model
    whisper_models._MODELS.clear()
    result = run()
    assert started == ["whisper-preload"]
    assert len(whisper_models._MODELS) == 1
    transcript = result.asset_materializations_for_node("transcript")[0]
    assert transcript.metadata["reused"].value is False
    assert "fox" in transcript.metadata["preview"].value.lower()

    # a re-run reuses the transcript: no load
    run()
    assert started == ["whisper-preload"]

    # --force recomputes it: the load starts again (and finds the model already there)
    run(tags={FORCE_TAG: "true"})
    assert started == ["whisper-preload", "whisper-preload"]
    assert not [t for t in threading.enumerate() if t.name == "whisper-preload"]  # finished
