"""tap-jsonl-dir: one stream per `<stream>.jsonl` file in a directory.

The streams (schema, primary key, replication key) are described in a JSON
file, so the tap never guesses types from data. Files are append-only and
ordered by the replication key, so a bookmark resumes exactly where the last
run ended; like every Singer tap it re-emits rows equal to the bookmark
(at-least-once), and the loader's upsert on the primary key absorbs them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from singer_sdk import Stream, Tap
from singer_sdk import typing as th


class JsonlStream(Stream):
    is_sorted = True  # files are appended in replication-key order

    def __init__(self, tap: Tap, name: str, spec: dict[str, Any], path: Path):
        super().__init__(tap, schema=spec["schema"], name=name)
        self.primary_keys = spec.get("key_properties", [])
        self.replication_key = spec.get("replication_key")
        self._path = path

    def get_records(self, context: dict | None) -> Iterable[dict]:
        if not self._path.exists():
            self.logger.warning("No file %s: stream %s has no rows yet", self._path, self.name)
            return
        start = self.get_starting_replication_key_value(context) if self.replication_key else None
        with self._path.open(encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{self._path}:{line_no}: not valid JSON ({exc.msg})") from exc
                if start is None or record[self.replication_key] >= start:
                    yield record


class TapJsonlDir(Tap):
    name = "tap-jsonl-dir"
    config_jsonschema = th.PropertiesList(
        th.Property(
            "data_dir", th.StringType, required=True, description="Directory holding one <stream>.jsonl file per stream"
        ),
        th.Property(
            "streams_file",
            th.StringType,
            required=True,
            description="JSON file: {stream: {schema, key_properties, replication_key}}",
        ),
    ).to_dict()

    def discover_streams(self) -> list[Stream]:
        spec_path = Path(self.config["streams_file"])
        try:
            specs = json.loads(spec_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{spec_path}: cannot read the stream description ({exc})") from exc
        data_dir = Path(self.config["data_dir"])
        return [JsonlStream(self, name, spec, data_dir / f"{name}.jsonl") for name, spec in specs.items()]


if __name__ == "__main__":
    TapJsonlDir.cli()
