"""The export formats and their file names (no imports: the CLI reads this at start-up)."""

FORMATS = ("json", "xml", "pdf", "docx", "ro-crate")
SUFFIXES = {"json": ".json", "xml": ".xml", "pdf": ".pdf", "docx": ".docx", "ro-crate": ".crate.zip"}


def file_name(key: str, fmt: str) -> str:
    return f"{key}{SUFFIXES[fmt]}"
