"""Use-cases: `(Memory, typed arguments) -> Result` with `to_json()`. They never print, read stdin or exit;
front ends (the CLI now, a server later) render what they return."""
