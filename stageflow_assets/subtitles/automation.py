"""When the daemon chains a job's runs: work that stageflow chains itself is left alone.

A video dropped into the inbox is chained by sensors, run by run, as soon as each run succeeds
(`video_inbox_sensor`: the source run; `inbox_chain_sensor`: every configured language, then the
mux and the outbox). A video the CLI submits runs into the languages asked for and no others.
Both tag their runs `stageflow/source` (`inbox`, `cli`), and updates made by runs with that tag
do not count as upstream updates here: a daemon running beside the CLI (`make ui`) does not
translate that video again into every configured language, and an inbox video is not chained
twice. Nor does a partition's first materialization count: whoever registered the job (the CLI,
the inbox) takes it through its first pass. What remains for `INBOX_EAGER` is work redone by
hand: an asset materialized again from the UI flows down to the languages, the mux and the outbox.
"""

import dagster as dg

from stageflow_assets.core.stage import SOURCE_TAG

# Dagster reads "all updates since the last tick were made by tagged runs" from the event log
# between two ticks, and cannot on a tick after one that saw no event at all (a new home): it then
# says no. Every update in that window is a first materialization, which never counts, so no
# chained work slips through it.
_first_materialization = (~dg.AutomationCondition.missing()).newly_true().with_label("first_materialization")
_updated_outside_stageflow_chains = (
    dg.AutomationCondition.newly_updated()
    & ~dg.AutomationCondition.executed_with_root_target()
    & ~dg.AutomationCondition.all_new_updates_have_run_tags(tag_keys={SOURCE_TAG})
    & ~_first_materialization
).with_label("newly_updated_again_outside_stageflow_chains")

# Dagster's `eager()` without its `newly_missing` branch (a job partition the CLI registers is
# missing everywhere until the CLI's own runs fill it) and with updates by chained runs ignored
INBOX_EAGER = (
    dg.AutomationCondition.any_deps_match(
        _updated_outside_stageflow_chains | dg.AutomationCondition.will_be_requested()
    ).with_label("any_deps_updated_outside_stageflow_chains").since_last_handled()
    & ~dg.AutomationCondition.any_deps_missing()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("eager_except_chained_work")

# the daemon must not mux a job while any language's blocking QC has failed
# (all_deps_blocking_checks_passed() is satisfied by one passing partition per dependency)
MUX_CONDITION = INBOX_EAGER & ~dg.AutomationCondition.any_deps_match(
    dg.AutomationCondition.any_checks_match(dg.AutomationCondition.check_failed(), blocking_only=True)
).with_label("no_dep_failed_blocking_checks")

# the outbox follows the mux only (requested with it, so in its run): a language updated on its
# own must not be delivered beside a video that does not carry it
_MUX = dg.AssetSelection.assets("subtitled_video")
OUTBOX_CONDITION = (
    dg.AutomationCondition.any_deps_match(
        _updated_outside_stageflow_chains | dg.AutomationCondition.will_be_requested()
    ).allow(_MUX).with_label("mux_updated_outside_stageflow_chains").since_last_handled()
    & ~dg.AutomationCondition.any_deps_missing().allow(_MUX)
    & ~dg.AutomationCondition.any_deps_in_progress().allow(_MUX)
    & ~dg.AutomationCondition.in_progress()
).with_label("after_the_mux")
