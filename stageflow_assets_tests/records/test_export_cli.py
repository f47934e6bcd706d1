"""`stageflow export` through the console script, as a user runs it."""

from __future__ import annotations

import json

from stageflow_assets_tests.conftest import run_cli
from stageflow_assets_tests.records.conftest import CHAIN, PROMPT, write_journey
from stageflow_assets_tests.records.readers import pdf_table_rows, pdf_text, squeeze


def test_export_writes_each_format_and_says_where(tmp_path):
    journey = write_journey(tmp_path / "home")
    out = tmp_path / "out"
    result = run_cli("export", journey.key, "--format", "pdf", "--format", "json", "-f", "pdf", "--out", out,
                     env={"STAGEFLOW_HOME": str(journey.paths.root)})
    assert result.returncode == 0, result.stderr
    assert result.value("record") == [journey.key] and result.value("domain") == ["journey"]
    assert result.value("wrote") == [str(out / f"{journey.key}.pdf"), str(out / f"{journey.key}.json")]
    assert sorted(p.name for p in out.iterdir()) == [f"{journey.key}.json", f"{journey.key}.pdf"]
    assert json.loads((out / f"{journey.key}.json").read_text(encoding="utf-8"))["title"] == PROMPT
    assert squeeze(PROMPT) in squeeze(pdf_text(out / f"{journey.key}.pdf"))
    assert len(pdf_table_rows(out / f"{journey.key}.pdf", ("#", "languages", "text", "backend", "duration"))) \
        == len(CHAIN)


def test_unknown_key_is_exit_2_with_one_line(tmp_path):
    result = run_cli("export", "no-such-job", "--format", "json", "--out", tmp_path / "out",
                     env={"STAGEFLOW_HOME": str(tmp_path / "home")})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == result.error_lines
    assert len(result.error_lines) == 1 and "no-such-job" in result.error_lines[0]
    assert not (tmp_path / "out").exists() and result.stdout == ""
