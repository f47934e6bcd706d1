"""One partition per deck: the key is derived from the deck name, so rebuilding a deck from an
edited list re-materializes the same partition and can reuse per-word work and note `mod`s."""

import dagster as dg

word_list_partitions = dg.DynamicPartitionsDefinition(name="word_lists")
