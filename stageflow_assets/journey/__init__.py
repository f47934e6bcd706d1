"""Journey: a prompt through four stages (translation + safety, interception, output safety, media)."""
