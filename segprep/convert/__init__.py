"""Converters: dataset-specific annotations to id / trainId masks."""
