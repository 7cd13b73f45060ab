"""Data stage: load, infer a schema, triage, snapshot by content hash, split."""
