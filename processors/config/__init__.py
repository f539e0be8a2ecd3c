"""Load and validate pipelines.yaml (see processors.config.models for the schema)."""

from processors.config.loader import LoadedConfig, load, load_text  # noqa: F401
