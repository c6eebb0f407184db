"""Runners: execute Meltano and dbt with argument lists, never a shell string."""
