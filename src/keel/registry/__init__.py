"""Model registry: versions, lineage, aliases, promotion and rollback (on MLflow)."""
