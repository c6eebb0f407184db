"""Deterministic demo source data for the pipeline (see generator.py)."""
