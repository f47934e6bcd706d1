"""Bad input raised anywhere in an asset body fails its step once, with its one line.

`run_stage` turned errors inside a stage's `work` into Dagster failures; an error raised before
it (loading an upstream manifest, reading the job's glossary) reached Dagster as a plain
exception, so the step's retry policy ran it again and the run ended in "Exceeded max_retries".
"""

import ast

import dagster as dg
import pytest

from stageflow_assets.core.errors import BadInputError, ProviderError
from stageflow_assets.core.stage import one_line_failures
from stageflow_assets_tests.conftest import REPO

RETRY = dg.RetryPolicy(max_retries=2, delay=0)
LINE = "terms.csv line 3: binary data (byte 57), not UTF-8 text; save the glossary as a UTF-8 CSV"


@dg.asset(retry_policy=RETRY)
@one_line_failures
def reads_bad_glossary(context: dg.AssetExecutionContext) -> None:
    """Raises before any stage work, as a body that loads its inputs first does."""
    context.log.info("loading inputs")
    raise BadInputError(LINE, glossary="terms.csv", line=3)


@dg.asset(retry_policy=RETRY, check_specs=[dg.AssetCheckSpec("fine", asset="yields_then_bad")])
@one_line_failures
def yields_then_bad(context: dg.AssetExecutionContext):
    """A generator body (assets that also yield check results)."""
    context.log.info("starting")
    raise BadInputError(LINE, glossary="terms.csv", line=3)
    yield dg.Output(None)  # noqa: unreachable - makes this a generator function


@dg.asset(retry_policy=RETRY)
@one_line_failures
def flaky_tool(context: dg.AssetExecutionContext) -> None:
    """A tool failure outside the work: retrying may help, so it is still retried."""
    raise ProviderError("ffmpeg timed out after 60s", args=["ffmpeg"])


@dg.asset(retry_policy=RETRY)
def undecorated(context: dg.AssetExecutionContext) -> None:
    raise BadInputError(LINE, glossary="terms.csv", line=3)


def _run(asset) -> tuple[dg.ExecuteInProcessResult, dict]:
    with dg.instance_for_test() as instance:
        result = dg.materialize([asset], instance=instance, raise_on_error=False)
        counts = {
            kind: len(instance.get_records_for_run(result.run_id, of_type=kind).records)
            for kind in (dg.DagsterEventType.STEP_UP_FOR_RETRY, dg.DagsterEventType.STEP_FAILURE,
                         dg.DagsterEventType.STEP_START)
        }
    return result, counts


@pytest.mark.parametrize("asset", [reads_bad_glossary, yields_then_bad], ids=["plain", "generator"])
def test_bad_input_outside_the_work_fails_once_with_its_line(asset):
    result, counts = _run(asset)

    assert not result.success
    assert counts[dg.DagsterEventType.STEP_UP_FOR_RETRY] == 0
    assert counts[dg.DagsterEventType.STEP_START] == 1
    assert counts[dg.DagsterEventType.STEP_FAILURE] == 1
    failure = result.get_step_failure_events()[0].step_failure_data
    assert failure.user_failure_data.description == LINE
    assert failure.user_failure_data.metadata["input"].value == {"glossary": "terms.csv", "line": 3}


def test_a_tool_failure_outside_the_work_is_still_retried_with_its_line():
    result, counts = _run(flaky_tool)

    assert counts[dg.DagsterEventType.STEP_UP_FOR_RETRY] == 2
    assert counts[dg.DagsterEventType.STEP_FAILURE] == 1
    failure = result.get_step_failure_events()[0].step_failure_data
    assert failure.user_failure_data.description == "ffmpeg timed out after 60s"


def test_without_the_decorator_the_same_error_is_retried():
    """What every stage asset did before: the reason the decorator exists."""
    _, counts = _run(undecorated)

    assert counts[dg.DagsterEventType.STEP_UP_FOR_RETRY] == 2


def test_every_asset_in_the_package_has_the_decorator():
    missing, found = [], 0
    for path in sorted((REPO / "stageflow_assets").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.FunctionDef):
                continue
            names = [ast.unparse(d.func if isinstance(d, ast.Call) else d) for d in node.decorator_list]
            if any(n in ("dg.asset", "dg.multi_asset") for n in names):
                found += 1
                # directly under the asset decorator, so it wraps the body Dagster calls
                if names[-1] != "one_line_failures":
                    missing.append(f"{path.relative_to(REPO)}: {node.name}")
    assert found >= 20
    assert missing == [], "put @one_line_failures right under @dg.asset(...) on these assets"
