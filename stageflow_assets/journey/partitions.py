"""One partition per journey (one execution of a prompt): every run of it is a new key, so each
journey keeps its own stage dirs, media and record."""

import dagster as dg

journey_partitions = dg.DynamicPartitionsDefinition(name="journey")
