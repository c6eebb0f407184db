"""The one error of a configuration or input file that cannot be used."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration or input file is missing or wrong; the message names the file (and the key),
    one line per problem, so that every caller can print it as it is, never as a traceback."""
