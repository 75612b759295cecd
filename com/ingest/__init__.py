"""Outside formats turned into validated events: JSON/JSONL (`jsonl`), JUnit XML (`junit`), and the pytest
plugin (`pytest_plugin`: its hooks and its writer process). Parsers only: recording is `com.ops.ingest`."""
