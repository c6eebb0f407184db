"""The configuration: orchestration.yml, validated by a typed schema and resolved, and its profiles.

Every layer reads its settings from here (the plan, the Airflow layer, the runners, the local
launcher, the CLI); this package imports none of them.
"""

from .errors import ConfigError
from .loading import OrchestrationConfig, load_config
from .locations import DEFAULT_CONFIG, REPO_ROOT
from .profile import Profile
from .yaml_file import load_yaml

__all__ = ["DEFAULT_CONFIG", "REPO_ROOT", "ConfigError", "OrchestrationConfig", "Profile", "load_config", "load_yaml"]
