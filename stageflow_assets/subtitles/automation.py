"""When the daemon chains a job's runs: the inbox world chains itself, CLI work is left alone.

A video dropped into the inbox is one source run (the sensor); `INBOX_EAGER` then runs every
configured language and the mux as the upstream stages land. A video the CLI submits runs into
the languages asked for and no others: updates made by runs tagged `stageflow/source=cli` do
not count as upstream updates here, so a daemon running beside the CLI (`make ui`) does not
translate that video again into every configured language.
"""

import dagster as dg

from stageflow_assets.core.stage import SOURCE_TAG

_updated_outside_the_cli = (
    dg.AutomationCondition.newly_updated()
    & ~dg.AutomationCondition.executed_with_root_target()
    & ~dg.AutomationCondition.all_new_updates_have_run_tags(tag_values={SOURCE_TAG: "cli"})
).with_label("newly_updated_outside_the_cli")

# Dagster's `eager()` without its `newly_missing` branch (a job partition the CLI registers is
# missing everywhere until the CLI's own runs fill it) and with upstream updates by CLI runs ignored
INBOX_EAGER = (
    dg.AutomationCondition.any_deps_match(
        _updated_outside_the_cli | dg.AutomationCondition.will_be_requested()
    ).with_label("any_deps_updated_outside_the_cli").since_last_handled()
    & ~dg.AutomationCondition.any_deps_missing()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("eager_except_cli_work")

# the daemon must not mux a job while any language's blocking QC has failed
# (all_deps_blocking_checks_passed() is satisfied by one passing partition per dependency)
MUX_CONDITION = INBOX_EAGER & ~dg.AutomationCondition.any_deps_match(
    dg.AutomationCondition.any_checks_match(dg.AutomationCondition.check_failed(), blocking_only=True)
).with_label("no_dep_failed_blocking_checks")
