"""The docker compose dev environment, checked statically: no Docker engine needed, under 3 s.

docker-compose.yml, .env.example, the Dockerfile, .dockerignore, the PostgreSQL init script and
deploy/helm/values.yaml are read as data and checked against each other and against the project:
the official Airflow 3 structure (x-airflow-common, airflow-init, api-server, scheduler,
dag-processor, Celery worker, triggerer, Redis) with healthchecks, every service / volume / host
path / port / variable referenced exists and is consistent, the production profile's variables
(orchestration.yml) are all set, the commands the containers run exist (Airflow's CLI as its own
source defines it, the project's [project.scripts]), the image matches constraints.txt, and no
secret is written in the compose file. `docker compose config` runs too where the compose plugin
is installed (it is not on every machine).
"""

from __future__ import annotations

import ast
import fnmatch
import functools
import importlib.util
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
HELM_VALUES = ROOT / "deploy" / "helm" / "values.yaml"

PROJECT_MOUNT = "/opt/airflow/project"  # where the image installs the project and compose mounts it
WORKER_LOG_SERVER_PORT = 8793  # Airflow's worker log server: never the API's port
REQUIRED_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
    "redis",
    "postgres",
    "mariadb",
    "mailpit",
}
AIRFLOW_COMMANDS = {  # service -> the Airflow command it runs (the official file's)
    "airflow-apiserver": ["api-server"],
    "airflow-scheduler": ["scheduler"],
    "airflow-dag-processor": ["dag-processor"],
    "airflow-worker": ["celery", "worker"],
    "airflow-triggerer": ["triggerer"],
}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|FERNET|WEBHOOK|_KEY$|^AIRFLOW_CONN_")
WHOLE_INTERPOLATION = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(?::?[-?][^}]*)?\}$")
# Compose interpolation: $$ (a literal $), ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, $VAR
INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)"
    r"(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


# ----------------------------------------------------------------------------- loading


@functools.cache
def compose() -> dict:
    data = yaml.safe_load(COMPOSE.read_text())  # resolves the anchors and `<<` merge keys
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), "no services in docker-compose.yml"
    return data


def services() -> dict[str, dict]:
    return compose()["services"]


@functools.cache
def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f".env.example: not KEY=VALUE: {line!r}"
            values[key.strip()] = value.strip().strip("'\"")
    return values


def interpolate(value, env: dict[str, str]):
    """What compose makes of a value, with .env.example as the environment."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match) -> str:
        if m["escaped"]:
            return "$"
        name, op, arg = m["braced"] or m["named"], m["op"], m["arg"]
        current = env.get(name)
        if op in (":-", "-"):
            return current if (current if op == ":-" else current is not None) else arg
        if op in (":?", "?"):
            assert current if op == ":?" else current is not None, f"${{{name}}} required: {arg}"
        if op in (":+", "+"):
            return arg if (current if op == ":+" else current is not None) else ""
        return current or ""

    return INTERPOLATION.sub(sub, value)


def strings(value):
    """Every string in a YAML tree (what compose interpolates)."""
    if isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)
    elif isinstance(value, str):
        yield value


def interpolated_names(value) -> set[str]:
    return {m["braced"] or m["named"] for s in strings(value) for m in INTERPOLATION.finditer(s) if not m["escaped"]}


@functools.cache
def resolved() -> dict:
    return interpolate(compose(), env_example())


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def command(service: dict) -> list[str]:
    cmd = service.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def depends_on(service: dict) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {d: "service_started" for d in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def volume_mounts(service: dict) -> list[tuple[str, str, str]]:
    """(kind, source, target): kind 'bind' (a host path) or 'volume' (a named volume)."""
    mounts = []
    for vol in service.get("volumes") or []:
        if isinstance(vol, str):
            parts = vol.split(":")
            if len(parts) == 1:
                continue  # an anonymous volume
            source, target = parts[0], parts[1]
        else:
            source, target = vol.get("source", ""), vol.get("target", "")
            if vol.get("type") not in (None, "bind", "volume"):
                continue
        kind = "bind" if source.startswith((".", "/", "~", "$")) else "volume"
        mounts.append((kind, source, target))
    return mounts


def published_ports(service: dict) -> list[tuple[int | None, int]]:
    """(host port or None, container port) of a service with interpolations resolved."""
    out = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            published = port.get("published")
            out.append((int(published) if published not in (None, "") else None, int(port["target"])))
            continue
        parts = str(port).split("/")[0].split(":")
        container = int(parts[-1])
        host = int(parts[-2]) if len(parts) >= 2 and parts[-2] else None
        out.append((host, container))
    return out


def is_project_image(service: dict) -> bool:
    return service.get("image") == compose()["x-airflow-common"]["image"] or "build" in service


def script_of(service: dict) -> str | None:
    """The shell script a service runs (`bash -c SCRIPT`, or entrypoint bash with `-c SCRIPT`)."""
    cmd = command(service)
    entry = service.get("entrypoint")
    entry = shlex.split(entry) if isinstance(entry, str) else (entry or [])
    full = [*entry, *cmd]
    for i, token in enumerate(full[:-1]):
        if token == "-c" and i >= 1 and Path(full[i - 1]).name in ("bash", "sh"):
            return full[i + 1]
    return None


@functools.cache
def orchestration() -> dict:
    return yaml.safe_load((ROOT / "orchestration.yml").read_text())


@functools.cache
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


@functools.cache
def constraint_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if m:
            pins[m[1].lower().replace("_", "-")] = m[2]
    return pins


@functools.cache
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    instructions, current = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        current = f"{current} {line}" if current else line
        if current.endswith("\\"):
            current = current[:-1].rstrip()
            continue
        word, _, rest = current.partition(" ")
        instructions.append((word.upper(), rest.strip()))
        current = ""
    return instructions


@functools.cache
def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, args in dockerfile():
        if word == "ENV":
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                env[key] = re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m[1], m[0]), value)
    return env


@functools.cache
def dockerignore() -> list[tuple[bool, str]]:
    patterns = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negated = line.startswith("!")
            patterns.append((negated, line.lstrip("!").strip("/")))
    return patterns


def docker_ignored(relpath: str) -> bool:
    """Whether .dockerignore keeps `relpath` (or a directory above it) out of the build context."""
    if relpath in (".", ""):
        return False
    parts = Path(relpath).as_posix().strip("/").split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    ignored = False
    for negated, pattern in dockerignore():
        base = pattern[3:] if pattern.startswith("**/") else None
        if any(
            fnmatch.fnmatchcase(p, pattern) or (base and fnmatch.fnmatchcase(p.rsplit("/", 1)[-1], base))
            for p in prefixes
        ):
            ignored = not negated
    return ignored


# ----------------------------------------------------------------------------- Airflow's CLI


def _module_assignments(tree: ast.Module) -> dict[str, ast.expr]:
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out[target.id] = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            out[node.target.id] = node.value
    return out


def _commands(list_node: ast.expr, assigns: dict[str, ast.expr]) -> dict[str, set[str] | None]:
    """{command: None for an action, {subcommands} for a group} from a list of *Command(...) calls."""
    out: dict[str, set[str] | None] = {}
    for call in getattr(list_node, "elts", []):
        if not isinstance(call, ast.Call):
            continue
        kwargs = {kw.arg: kw.value for kw in call.keywords}
        name = kwargs.get("name")
        if not isinstance(name, ast.Constant):
            continue
        subs = kwargs.get("subcommands")
        if isinstance(subs, ast.Name):
            subs = assigns.get(subs.id)
        out[name.value] = set(_commands(subs, assigns)) if subs is not None else None
    return out


@functools.cache
def airflow_cli() -> dict[str, set[str] | None]:
    """Airflow's commands, read from the installed Airflow's CLI definitions (its source, parsed:
    importing Airflow would take seconds), plus the Celery provider's `celery` group."""
    spec = importlib.util.find_spec("airflow")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("Airflow is not installed here: cannot check the commands against its CLI")
    cli: dict[str, set[str] | None] = {}
    for location in spec.submodule_search_locations:
        for source, list_name in (
            (Path(location) / "cli" / "cli_config.py", "core_commands"),
            (Path(location) / "providers" / "celery" / "cli" / "definition.py", "CELERY_CLI_COMMANDS"),
        ):
            if source.exists():
                assigns = _module_assignments(ast.parse(source.read_text()))
                if list_name in assigns:
                    cli.update(_commands(assigns[list_name], assigns))
    if "scheduler" not in cli:
        pytest.skip("could not read Airflow's CLI definitions from its source")
    return cli


def check_airflow_command(tokens: list[str], where: str) -> None:
    cli = airflow_cli()
    assert tokens and tokens[0] in cli, f"{where}: `airflow {' '.join(tokens)}`: no such Airflow command"
    subs = cli[tokens[0]]
    if subs is not None:
        assert len(tokens) > 1 and tokens[1] in subs, (
            f"{where}: `airflow {' '.join(tokens[:2])}`: {tokens[0]} has no such subcommand "
            f"(it has: {', '.join(sorted(subs))})"
        )


AIRFLOW_IN_SCRIPT = re.compile(r"(?<![\w/.-])airflow\s+([a-z][\w-]*)(?:[ \t]+([a-z][\w-]*))?")


def _parser_choices(parser) -> set[str]:
    import argparse

    found: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found |= {name, *_parser_choices(sub)}
        elif action.choices:
            found |= {str(c) for c in action.choices}
    return found


def project_cli_choices() -> dict[str, set[str]]:
    """The project's scripts and their first arguments (subcommands / destinations), from the source."""
    scripts = pyproject()["project"]["scripts"]
    out: dict[str, set[str]] = {}
    for script, target in scripts.items():
        module = target.split(":")[0]
        if module == "orchestrator.cli":  # its real parser: subcommands and every argument's choices
            from orchestrator.cli import build_parser

            out[script] = _parser_choices(build_parser())
            continue
        source = ROOT / (module.replace(".", "/") + ".py")
        tree = ast.parse(source.read_text())
        choices: set[str] = set()
        loop_vars: set[str] = set()
        for node in ast.walk(tree):
            # sub.add_parser("name") / sub.add_parser(name) in a loop / add_argument(..., choices=[...])
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_parser" and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant):
                    choices.add(first.value)
                elif isinstance(first, ast.Name):
                    loop_vars.add(first.id)
            if (
                isinstance(node, ast.keyword)
                and node.arg == "choices"
                and isinstance(node.value, (ast.List, ast.Tuple))
            ):
                choices |= {e.value for e in node.value.elts if isinstance(e, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.For) and isinstance(node.iter, (ast.Tuple, ast.List)):
                names = [
                    t.id if isinstance(t, ast.Name) else None
                    for t in (node.target.elts if isinstance(node.target, ast.Tuple) else [node.target])
                ]
                for i, var in enumerate(names):
                    if var in loop_vars:
                        for elt in node.iter.elts:
                            item = elt.elts[i] if isinstance(elt, ast.Tuple) else elt
                            if isinstance(item, ast.Constant):
                                choices.add(item.value)
        out[script] = choices
    return out


# ----------------------------------------------------------------------------- the compose file


def test_compose_parses_with_the_official_structure():
    data = compose()
    common = data.get("x-airflow-common")
    assert isinstance(common, dict), "no x-airflow-common anchor"
    for key in ("image", "environment", "volumes", "user", "depends_on"):
        assert key in common, f"x-airflow-common has no {key}"
    assert "build" in common, "x-airflow-common must build the project's image (Dockerfile)"
    missing = REQUIRED_SERVICES - set(services())
    assert not missing, f"services missing: {sorted(missing)}"
    for name, expected in AIRFLOW_COMMANDS.items():
        svc = services()[name]
        assert is_project_image(svc), f"{name} does not run the project's image"
        cmd = command(svc)
        assert (cmd[1:] if cmd[:1] == ["airflow"] else cmd) == expected, f"{name} runs {cmd}, expected {expected}"
    assert environment(common)["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    broker = urlsplit(environment(common)["AIRFLOW__CELERY__BROKER_URL"])
    assert broker.scheme == "redis" and broker.hostname == "redis"
    backend = environment(common)["AIRFLOW__CELERY__RESULT_BACKEND"]
    assert backend.startswith("db+postgresql") and urlsplit(backend).hostname == "postgres"
    assert urlsplit(environment(common)["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).hostname == "postgres"
    init = services()["airflow-init"]
    assert environment(init).get("_AIRFLOW_DB_MIGRATE") == "true", "airflow-init must migrate the database"
    assert environment(services()["airflow-worker"]).get("DUMB_INIT_SETSID") == "0"


@pytest.mark.subprocess
def test_docker_compose_config_accepts_the_file():
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker CLI on this machine")
    try:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        pytest.skip("`docker compose version` did not answer")
    if probe.returncode != 0:
        pytest.skip("the docker compose plugin is not installed here (`docker compose version` failed)")
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE), "--env-file", str(ENV_EXAMPLE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr


def test_long_running_services_have_healthchecks_and_one_shots_do_not_restart():
    for name, svc in services().items():
        restart = str(svc.get("restart", "no"))
        long_running = restart != "no"
        if name in REQUIRED_SERVICES - {"airflow-init"}:
            assert long_running, f"{name} must be long-running (restart: always, as in the official file)"
        if long_running:
            test = (svc.get("healthcheck") or {}).get("test")
            assert test and not (svc.get("healthcheck") or {}).get("disable"), f"{name} has no healthcheck"
    assert str(services()["airflow-init"].get("restart", "no")) == "no", "airflow-init is a one-shot"


def test_depends_on_references_existing_services_with_the_right_kind():
    svcs = services()
    for name, svc in svcs.items():
        for dep, condition in depends_on(svc).items():
            assert dep in svcs, f"{name} depends on {dep}, which is not a service"
            target = svcs[dep]
            assert not target.get("profiles") or set(target["profiles"]) <= set(svc.get("profiles") or []), (
                f"{name} depends on {dep}, which only starts with profile {target['profiles']}"
            )
            if condition == "service_healthy":
                assert (target.get("healthcheck") or {}).get("test"), f"{name} waits for {dep} healthy: no healthcheck"
            elif condition == "service_completed_successfully":
                assert str(target.get("restart", "no")) == "no", f"{name} waits for {dep} to complete: it restarts"
            else:
                assert condition == "service_started", f"{name} -> {dep}: unknown condition {condition}"
    # no cycle
    seen: dict[str, int] = {}

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert node not in path, f"depends_on cycle: {' -> '.join((*path, node))}"
        if seen.get(node):
            return
        for dep in depends_on(svcs[node]):
            visit(dep, (*path, node))
        seen[node] = 1

    for name in svcs:
        visit(name, ())


def test_hosts_named_in_the_environment_are_services():
    svcs = set(services())
    for name, svc in services().items():
        for key, value in environment(svc).items():
            if not value or WHOLE_INTERPOLATION.match(value):
                continue
            host = None
            if key.endswith("_HOST"):
                host = value
            elif "://" in value:
                host = urlsplit(interpolate(value, env_example())).hostname
            if host is not None and host not in ("localhost", "127.0.0.1"):
                assert host in svcs, f"{name}: {key} points at host {host!r}, which is not a service"


def test_named_volumes_are_declared_and_used():
    declared = set(compose().get("volumes") or {})
    used = set()
    for name, svc in services().items():
        for kind, source, _ in volume_mounts(svc):
            if kind == "volume":
                assert source in declared, f"{name} mounts volume {source!r}, not declared under volumes:"
                used.add(source)
    assert not declared - used, f"declared but never mounted: {sorted(declared - used)}"


def test_bind_mounts_point_at_paths_in_the_repo():
    for name, svc in services().items():
        for kind, source, _target in volume_mounts(svc):
            if kind != "bind":
                continue
            assert source.startswith("."), f"{name}: bind mount {source!r} must be relative to the repo"
            path = (ROOT / source).resolve()
            assert path == ROOT or ROOT in path.parents, f"{name}: {source} is outside the repo"
            assert path.exists(), f"{name}: mounts {source}, which does not exist in the repo"
    common = compose()["x-airflow-common"]
    project = [(s, t) for kind, s, t in volume_mounts(common) if t == PROJECT_MOUNT]
    assert project and (ROOT / project[0][0]).resolve() == ROOT, f"the working tree must be mounted at {PROJECT_MOUNT}"
    for _kind, _source, target in volume_mounts(common):
        if target != PROJECT_MOUNT:
            assert not target.startswith(PROJECT_MOUNT + "/"), (
                f"{target} is mounted inside the working tree's mount: Docker would create root-owned "
                "directories in the working tree"
            )


def test_paths_into_the_mounted_project_exist():
    for name, svc in services().items():
        texts = [*environment(svc).values(), script_of(svc) or ""]
        for text in texts:
            for path in re.findall(re.escape(PROJECT_MOUNT) + r"(/[\w./-]*)?", text):
                rel = path.strip("/")
                assert (ROOT / rel).exists(), f"{name}: {PROJECT_MOUNT}/{rel} does not exist in the repo"


def test_host_ports_are_unique_and_the_api_port_is_consistent():
    owners: dict[int, str] = {}
    for name, svc in resolved()["services"].items():
        for host, _ in published_ports(svc):
            if host is not None:
                assert host not in owners, f"host port {host}: both {owners[host]} and {name}"
                owners[host] = name
    assert WORKER_LOG_SERVER_PORT not in owners, f"{owners.get(WORKER_LOG_SERVER_PORT)} publishes 8793 (log server)"

    env = environment(resolved()["x-airflow-common"])
    url = urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    api = resolved()["services"].get(url.hostname)
    assert api is not None, f"EXECUTION_API_SERVER_URL host {url.hostname!r} is not a service"
    assert command(api)[-1:] == ["api-server"], f"{url.hostname} does not run the api-server"
    api_port = int(environment(api).get("AIRFLOW__API__PORT", 8080))
    assert url.port == api_port, f"execution API URL port {url.port} != the api-server's port {api_port}"
    assert url.port != WORKER_LOG_SERVER_PORT and url.path.rstrip("/") == "/execution"
    ports = published_ports(api)
    assert any(c == api_port for _, c in ports), f"the api-server publishes no port to its {api_port}"
    assert f":{api_port}/" in " ".join(api["healthcheck"]["test"]), "the api-server healthcheck uses another port"
    base = urlsplit(env["AIRFLOW__API__BASE_URL"])
    assert base.hostname in ("localhost", "127.0.0.1")
    assert base.port in [h for h, c in ports if c == api_port], "AIRFLOW__API__BASE_URL is not the published API port"


def test_the_production_profile_is_fully_set_on_the_compose_hosts():
    env = environment(compose()["x-airflow-common"])
    assert env.get("PIPELINE_PROFILE") == "production"
    needed = set(orchestration()["profiles"]["production"].get("env") or {})
    missing = needed - set(env)
    assert not missing, f"production profile variables not set in x-airflow-common: {sorted(missing)}"
    # the databases those variables name exist: created by postgres (POSTGRES_DB + the init script) ...
    pg_env = environment(services()["postgres"])
    pg_dbs = {pg_env["POSTGRES_DB"], *pg_env.get("POSTGRES_EXTRA_DATABASES", "").split()}
    for name, svc in services().items():
        for key, value in environment(svc).items():
            if "://" in value and value.split("://")[0].replace("db+", "").startswith("postgres"):
                url = urlsplit(interpolate(value, env_example()))
                if url.hostname == "postgres":
                    assert url.path.strip("/") in pg_dbs, f"{name}: {key} names database {url.path}, never created"
    for prefix in ("SOURCE_PG", "WAREHOUSE_PG"):
        if env.get(f"{prefix}_HOST") == "postgres":
            assert env[f"{prefix}_DATABASE"] in pg_dbs, f"{prefix}_DATABASE is never created"
            assert env[f"{prefix}_PORT"] == "5432"
    # ... and the demo seeder writes where the extractors read, creating the user they log in as
    seed = environment(services()["demo-seed"])
    assert urlsplit(seed["DEMO_MARIADB_URL"]).hostname == env["SOURCE_MARIADB_HOST"]
    assert urlsplit(seed["DEMO_MARIADB_URL"]).path.strip("/") == env["SOURCE_MARIADB_DATABASE"]
    assert urlsplit(seed["DEMO_POSTGRES_URL"]).hostname == env["SOURCE_PG_HOST"]
    assert urlsplit(seed["DEMO_POSTGRES_URL"]).path.strip("/") == env["SOURCE_PG_DATABASE"]
    writers = ast.parse((ROOT / "demo_data" / "writers.py").read_text())
    reader = {
        t.id: n.value.value
        for n in writers.body
        if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)
        for t in n.targets
        if isinstance(t, ast.Name)
    }
    assert env["SOURCE_MARIADB_USER"] == env["SOURCE_PG_USER"] == reader["READER_USER"]
    assert env_example()["DEMO_READER_PASSWORD"] == reader["READER_PASSWORD"], (
        ".env.example's DEMO_READER_PASSWORD differs from the password demo_data creates the user with"
    )
    mariadb = environment(services()["mariadb"])
    assert env["SOURCE_MARIADB_DATABASE"] == mariadb["MARIADB_DATABASE"]


def test_alerting_goes_to_the_mail_sink_and_the_outbox_database():
    env = environment(compose()["x-airflow-common"])
    for key in (
        "ALERTING_CONFIG",
        "ALERTING_OUTBOX_URL",
        "ALERTING_SMTP_HOST",
        "ALERTING_SMTP_PORT",
        "SLACK_BOT_TOKEN",
        "AIRFLOW__API__BASE_URL",
    ):
        assert key in env, f"x-airflow-common does not set {key}"
    assert env["ALERTING_CONFIG"].startswith(PROJECT_MOUNT + "/")
    smtp = resolved()["services"][env["ALERTING_SMTP_HOST"]]
    smtp_ports = {c for _, c in published_ports(smtp)} | {int(p) for p in smtp.get("expose") or []}
    assert int(env["ALERTING_SMTP_PORT"]) in smtp_ports, "the SMTP port is not one the mail sink listens on"
    assert urlsplit(env["ALERTING_OUTBOX_URL"]).hostname == "postgres"


def test_init_scripts_exist_and_are_executable():
    pg = services()["postgres"]
    init = [s for kind, s, t in volume_mounts(pg) if kind == "bind" and t == "/docker-entrypoint-initdb.d"]
    assert init, "postgres mounts no init scripts"
    scripts = sorted((ROOT / init[0]).glob("*"))
    assert scripts, f"{init[0]} is empty"
    for script in scripts:
        assert script.suffix in (".sh", ".sql", ".gz"), f"{script.name}: the postgres image runs only .sh/.sql(.gz)"
        if script.suffix == ".sh":
            assert script.stat().st_mode & 0o111, f"{script} is not executable"
            assert script.read_text().startswith("#!"), f"{script} has no shebang"
    text = "\n".join(s.read_text() for s in scripts)
    assert "POSTGRES_EXTRA_DATABASES" in text, "the init script does not create POSTGRES_EXTRA_DATABASES"


def test_commands_the_containers_run_exist():
    scripts = project_cli_choices()
    project = pyproject()["project"]
    extras = project["optional-dependencies"]
    # What the Dockerfile installs: the dependencies and the `demo` extra (with the extras it names).
    wanted = [*project["dependencies"], *extras["demo"]]
    for d in extras["demo"]:
        if d.startswith(project["name"] + "["):
            wanted += [x for e in d[d.index("[") + 1 : d.index("]")].split(",") for x in extras[e]]
    dependencies = {re.split(r"[\[<>=~! ;]", d, maxsplit=1)[0].lower() for d in wanted}
    for name, svc in services().items():
        if not is_project_image(svc):
            continue
        script = script_of(svc)
        where = f"{name}"
        if script is None:
            cmd = command(svc)
            if cmd:
                check_airflow_command(cmd[1:] if cmd[0] == "airflow" else cmd, where)
        else:
            script = script.replace("$$", "$")
            for m in AIRFLOW_IN_SCRIPT.finditer(script):
                check_airflow_command([t for t in m.groups() if t], where)
            for prog, choices in scripts.items():
                for m in re.finditer(
                    rf"(?<![\w/.-]){re.escape(prog)}((?:\s+-[\w-]+(?:\s+[\w.-]+)?)*)\s+([a-z][\w-]*)", script
                ):
                    assert m[2] in choices, f"{where}: `{prog} {m[2]}`: not one of {sorted(choices)}"
            for prog, dist in (("dbt", "dbt-core"), ("meltano", "meltano")):
                if re.search(rf"(?<![\w/.-]){prog}\s+[a-z]", script):
                    assert dist in dependencies, f"{where} runs {prog}, which pyproject.toml does not install"
        for test in strings((svc.get("healthcheck") or {}).get("test") or []):
            for m in AIRFLOW_IN_SCRIPT.finditer(test.replace("$$", "$")):
                check_airflow_command([t for t in m.groups() if t], f"{name} healthcheck")
    for prog in ("demo-data", "orchestrator"):
        assert prog in scripts, f"{prog} is not in pyproject's [project.scripts]"


def test_every_interpolated_variable_is_in_env_example():
    example = env_example()
    names = interpolated_names(compose())
    missing = names - set(example)
    assert not missing, f"docker-compose.yml uses variables .env.example does not define: {sorted(missing)}"
    unused = set(example) - names
    assert not unused, f".env.example defines variables docker-compose.yml never uses: {sorted(unused)}"
    resolved()  # every ${VAR:?...} is satisfied by .env.example
    assert example.get("SLACK_BOT_TOKEN") == "", ".env.example must not carry a Slack token"


def test_no_secret_is_written_in_the_compose_file():
    example = env_example()
    text = COMPOSE.read_text()
    for key, value in example.items():
        if SECRET_NAME.search(key) and len(value) >= 16:  # generated secrets (short ones double as user names)
            assert value not in text, f"the value of {key} is written in docker-compose.yml"
    blocks = {"x-airflow-common": compose()["x-airflow-common"], **services()}
    for name, svc in blocks.items():
        for key, value in environment(svc).items():
            if SECRET_NAME.search(key) and not key.endswith(("_FILE", "_PATH", "_DIR")):
                assert value == "" or WHOLE_INTERPOLATION.match(value), (
                    f"{name}: {key} must come from .env (${{VAR}}), not be written here"
                )
            if "://" in value:
                password = re.match(r"^[\w+.-]+://[^:/@]*:([^@]*)@", value)
                if password and password[1]:
                    assert WHOLE_INTERPOLATION.match(password[1]), f"{name}: {key} has a password written in its URL"


# ----------------------------------------------------------------------------- the image


def test_dockerfile_base_image_matches_the_constraints():
    froms = [args for word, args in dockerfile() if word == "FROM"]
    assert len(froms) == 1, "one stage expected"
    m = re.fullmatch(r"apache/airflow:(\d+\.\d+\.\d+)(?:-python(\d+\.\d+))?", froms[0].split()[0])
    assert m, f"FROM {froms[0]}: expected apache/airflow:<version>-python<X.Y>"
    assert m[1] == constraint_pins()["apache-airflow"], (
        f"the image is Airflow {m[1]}, constraints.txt pins apache-airflow=={constraint_pins()['apache-airflow']}"
    )
    assert m[1].startswith("3.3."), "the project is built for Airflow 3.3"
    header = re.search(r"--python[ =](\d+\.\d+)", (ROOT / "constraints.txt").read_text())
    assert m[2] and (header is None or m[2] == header[1]), (
        f"the image's Python {m[2]} is not the one constraints.txt was compiled for ({header and header[1]})"
    )


def test_dockerfile_copies_existing_files_the_context_keeps():
    copies = [args for word, args in dockerfile() if word in ("COPY", "ADD")]
    assert copies
    for args in copies:
        tokens = [t for t in shlex.split(args) if not t.startswith("--")]
        assert "--from" not in args, "no multi-stage copies expected"
        for source in tokens[:-1]:
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the repo"
            assert not docker_ignored(source), f"COPY {source}: excluded by .dockerignore"


def test_dockerfile_installs_the_project_with_the_constraints_and_meltano_plugins_outside_the_mount():
    runs = [args for word, args in dockerfile() if word == "RUN"]
    installs = [r for r in runs if re.search(r"\b(uv )?pip install\b", r)]
    assert installs, "the Dockerfile installs nothing"
    for run in installs:
        assert re.search(r"(-c|--constraint)[ =]\S*constraints\.txt", run), f"install without -c constraints.txt: {run}"
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in " ".join(a for _, a in dockerfile())
    for name, svc in services().items():
        assert environment(svc).get("_PIP_ADDITIONAL_REQUIREMENTS", "") == "", f"{name} installs at start-up"
    assert any(w == "USER" and a == "airflow" for w, a in dockerfile()), "install as the airflow user"
    env = dockerfile_env()
    editable = [re.search(r"-e\s+\"?([^\s\"]+)", r) for r in installs]
    editable = [re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m[1], m[0]), e[1]) for e in editable if e]
    assert editable == [PROJECT_MOUNT], (
        f"the project must be installed editable at {PROJECT_MOUNT} (where compose mounts the working tree "
        f"and where the orchestrator looks for its project files), got {editable}"
    )
    sys_dir = env.get("MELTANO_SYS_DIR_ROOT", f"{PROJECT_MOUNT}/meltano/.meltano")
    assert not (sys_dir == PROJECT_MOUNT or sys_dir.startswith(PROJECT_MOUNT + "/")), (
        f"MELTANO_SYS_DIR_ROOT={sys_dir}: the working tree mounted at {PROJECT_MOUNT} would hide the plugins"
    )
    for name, svc in services().items():
        override = environment(svc).get("MELTANO_SYS_DIR_ROOT")
        assert override in (None, sys_dir), f"{name} moves Meltano's plugins to {override}"
    assert any(re.search(r"\bmeltano install\b", r) for r in runs), "the image does not install the Meltano plugins"
    assert any(re.search(r"\bdbt parse\b", r) for r in runs) and any(re.search(r"\bdbt deps\b", r) for r in runs)
    assert env.get("MELTANO_SEND_ANONYMOUS_USAGE_STATS") == "false"
    assert env.get("AIRFLOW__CORE__DAGS_FOLDER") == f"{PROJECT_MOUNT}/dags"
    assert environment(compose()["x-airflow-common"])["AIRFLOW__CORE__DAGS_FOLDER"] == f"{PROJECT_MOUNT}/dags"


def test_dockerignore_keeps_local_state_and_secrets_out_but_not_the_project():
    for path in (
        ".env",
        ".git",
        ".venv",
        "var",
        "meltano/.meltano",
        "dbt_project/target",
        "dbt_project/logs",
        "orchestrator/__pycache__/x.pyc",
    ):
        assert docker_ignored(path), f".dockerignore does not exclude {path}"
    needed = [
        "dags",
        "orchestrator",
        "alerting",
        "demo_data",
        "meltano/meltano.yml",
        "meltano/extract",
        "meltano/load",
        "dbt_project/dbt_project.yml",
        "dbt_project/models",
        "orchestration.yml",
        "pyproject.toml",
        "constraints.txt",
        pyproject()["project"].get("readme", "README.md"),
    ]
    alerting_config = (orchestration().get("alerting") or {}).get("config")
    if alerting_config:
        needed.append(alerting_config)
    for path in needed:
        assert not docker_ignored(path), f".dockerignore excludes {path}, which the image needs"


# ----------------------------------------------------------------------------- Kubernetes (on paper)


def test_helm_values_are_the_kubernetes_executor_on_the_production_profile():
    values = yaml.safe_load(HELM_VALUES.read_text())
    assert values["executor"] == "KubernetesExecutor"
    assert values["airflowVersion"] == constraint_pins()["apache-airflow"]
    assert values["images"]["airflow"]["repository"] and values["images"]["airflow"]["repository"] != "apache/airflow"
    assert values["postgresql"]["enabled"] is False, "metadata on an external PostgreSQL"
    assert values["data"]["metadataSecretName"], "the metadata connection comes from a Secret"
    env = {e["name"]: str(e.get("value", "")) for e in values.get("env") or []}
    secret = {e["envName"] for e in values.get("secret") or []}
    assert env.get("PIPELINE_PROFILE") == "production"
    needed = set(orchestration()["profiles"]["production"].get("env") or {})
    assert not needed - set(env) - secret, f"profile variables not set: {sorted(needed - set(env) - secret)}"
    for name in env:
        assert not SECRET_NAME.search(name) and name not in ("MELTANO_DATABASE_URI", "ALERTING_OUTBOX_URL"), (
            f"{name} is a credential: put it under `secret:`, not `env:`"
        )
    core = values["config"]["core"]
    assert core["dags_folder"] == f"{PROJECT_MOUNT}/dags"
    assert "api-server" in core["execution_api_server_url"] and "8793" not in core["execution_api_server_url"]
    assert values["workers"]["resources"]["requests"] and values["workers"]["resources"]["limits"]


# ----------------------------------------------------------------------------- the Compose Specification

COMPOSE_SPEC = ROOT / "tests" / "data" / "compose-spec.json"  # vendored: tests/data/README.md


@functools.cache
def compose_spec():
    """A validator for the official Compose Specification JSON schema (what `docker compose config`
    checks). Missing is a failure, not a skip: without it this check would silently vanish."""
    import json

    import jsonschema

    assert COMPOSE_SPEC.is_file(), f"{COMPOSE_SPEC} not found (vendored: tests/data/README.md)"
    schema = json.loads(COMPOSE_SPEC.read_text())
    # Draft 7 (its "$schema" lacks the trailing "#", which jsonschema would not recognise as draft 7)
    assert "draft-07" in schema.get("$schema", ""), schema.get("$schema")
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def spec_errors(document) -> list[str]:
    errors = sorted(compose_spec().iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path])
    return [f"{'.'.join(map(str, e.absolute_path)) or '(top level)'}: {e.message}" for e in errors]


def test_compose_file_follows_the_compose_specification():
    """As written (anchors and `<<` merges resolved, as compose does) and as compose reads it after
    interpolating .env.example's values."""
    assert spec_errors(compose()) == []
    assert spec_errors(resolved()) == []


@pytest.mark.parametrize(
    "path, value, message",
    [
        (("services", "redis", "restart_policy"), "always", "services.redis: 'restart_policy' does not match any"),
        (
            ("services", "postgres", "ports"),
            {"5432": "5432"},
            "services.postgres.ports: {'5432': '5432'} is not of type",
        ),
        (("services", "airflow-scheduler", "depends_on", "redis"), {"condition": "ready"}, "depends_on: {"),
        (("volumes_from_host",), {}, "(top level): 'volumes_from_host' does not match any"),
    ],
)
def test_the_compose_specification_check_catches_a_bad_file(path, value, message):
    """The schema is loaded and strict: typical mistakes in the compose file fail it."""
    import copy

    document = copy.deepcopy(compose())
    node = document
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    errors = spec_errors(document)
    assert any(message in e for e in errors), errors


# ----------------------------------------------------------------------------- the smoke run
# scripts/compose_smoke.sh boots this file with podman (stand-in base images where no registry is
# reachable: docker/standin/) and runs one cycle; it takes minutes, so it is `make compose-smoke`,
# not a test. These keep the script, the stand-ins and the compose file consistent.

SMOKE = ROOT / "scripts" / "compose_smoke.sh"
STANDIN = ROOT / "docker" / "standin"


def smoke_var(name: str) -> str:
    """A variable of the smoke script: NAME="..." or NAME=( "..." ... ) (its words, space-joined)."""
    text = SMOKE.read_text()
    m = re.search(rf"^{name}=\((.*?)^\)", text, re.S | re.M) or re.search(rf'^{name}="(.*?)"', text, re.S | re.M)
    assert m, f"{SMOKE.name} defines no {name}"
    return " ".join(w for w in re.sub(r"#[^\n]*", "", m[1]).replace('"', " ").split())


def boot_stages() -> list[list[str]]:
    body = re.search(r"^BOOT_STAGES=\((.*?)^\)", SMOKE.read_text(), re.S | re.M)
    assert body, "no BOOT_STAGES in the smoke script"
    return [stage.split() for stage in re.findall(r'"([^"]*)"', body[1])]


@pytest.mark.subprocess
def test_the_smoke_script_is_valid_bash_and_make_runs_it():
    subprocess.run(["bash", "-n", str(SMOKE)], check=True)
    subprocess.run(["bash", "-n", str(STANDIN / "build.sh")], check=True)
    makefile = (ROOT / "Makefile").read_text()
    target = re.search(r"^compose-smoke:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert target and "scripts/compose_smoke.sh" in target[1], "make compose-smoke does not run the script"
    test_target = re.search(r"^test:(.*)$", makefile, re.M)
    assert test_target and "compose-smoke" not in test_target[1], "the smoke run takes minutes: not in make test"
    assert (ROOT / smoke_var("cycle_driver")).is_file()


def test_the_smoke_boot_order_starts_every_service_after_what_it_depends_on():
    stages = boot_stages()
    order = [svc for stage in stages for svc in stage]
    default = {name for name, svc in services().items() if not svc.get("profiles")}
    assert sorted(order) == sorted(default), "BOOT_STAGES must name every default service exactly once"
    started: set[str] = set()
    for stage in stages:
        for svc in stage:
            early = set(depends_on(services()[svc])) - started
            assert not early, f"{svc} starts before {sorted(early)}, which it depends on"
        started |= set(stage)


def test_the_smoke_script_waits_for_one_shots_to_exit_and_the_rest_to_be_healthy():
    one_shots = set(smoke_var("ONE_SHOTS").split())
    for name in {svc for stage in boot_stages() for svc in stage}:
        svc = services()[name]
        if str(svc.get("restart", "no")) == "no":
            assert name in one_shots, f"{name} is a one-shot: the script must wait for it to exit"
        else:
            assert name not in one_shots, f"{name} runs on: the script must wait for it to be healthy"
            assert (svc.get("healthcheck") or {}).get("test"), f"{name} has no healthcheck to wait for"


def test_the_worker_healthcheck_pings_without_importing_airflow_within_its_timeout():
    """The official check (`celery --app airflow...app inspect ping`) imports Airflow: 16-24 s on a
    loaded 2-core machine, past its 10 s timeout. Celery's own app with the broker pings in 1-3 s."""
    worker = services()["airflow-worker"]
    check = worker["healthcheck"]
    kind, script = check["test"]
    assert kind == "CMD-SHELL"
    argv = shlex.split(script.replace("$$", "$"))
    assert argv[0] == "celery" and "--app" not in argv and "-A" not in argv, "the check must not load Airflow's app"
    assert argv[argv.index("--broker") + 1] == "${AIRFLOW__CELERY__BROKER_URL}"
    assert "AIRFLOW__CELERY__BROKER_URL" in environment(worker)
    assert argv[argv.index("inspect") + 1] == "ping"
    # celery@<hostname> is the name Airflow's worker takes unless celery_hostname is set; from
    # `hostname`, since podman sets no $HOSTNAME in the container (Docker does).
    assert argv[argv.index("--destination") + 1] == "celery@$(hostname)"
    assert "AIRFLOW__CELERY__CELERY_HOSTNAME" not in environment(worker)

    def seconds(value: str) -> int:
        return int(re.fullmatch(r"(\d+)s", value)[1])

    ping_timeout = int(argv[argv.index("--timeout") + 1])
    assert ping_timeout + 5 <= seconds(check["timeout"]), "the ping's own timeout must end before the check's"
    assert seconds(check["interval"]) >= 30 and seconds(check["start_period"]) >= 60


def test_no_healthcheck_imports_airflow_or_reads_hostname_from_the_environment():
    """`airflow ...` in a healthcheck imports Airflow: 16-30 s a check on a loaded 2-core machine,
    past any sane timeout. The triggerer and the dag-processor ask the api-server's health endpoint
    (their heartbeats), with a status key that endpoint has."""
    keys = {"airflow-triggerer": "triggerer", "airflow-dag-processor": "dag_processor"}
    for name, svc in services().items():
        test = " ".join(strings((svc.get("healthcheck") or {}).get("test") or []))
        assert not re.search(r"(^|[\s|;&(])airflow\s", test), f"{name}: the healthcheck runs the airflow CLI"
        assert "HOSTNAME" not in test, f"{name}: podman sets no $HOSTNAME; use $(hostname)"
        if name in keys:
            api = services()["airflow-apiserver"]
            api_port = published_ports(resolved()["services"]["airflow-apiserver"])[0][1]
            assert f"http://airflow-apiserver:{api_port}/api/v2/monitor/health" in test, name
            assert f'["{keys[name]}"]["status"]' in test, name
            assert "--max-time" in test and is_project_image(api)


@pytest.mark.setup  # reads the demo's dbt manifest (dbt parse, in make setup)
def test_the_smoke_run_checks_exact_rows_of_what_the_production_plan_loads_and_builds():
    from pipeline_expectations import expected_daily_revenue, expected_row_counts

    from orchestrator.plan import load_config, plan_from_config

    plan = plan_from_config(load_config(profile="production"), cache_dir=None)
    checked = dict(pair.split("=") for pair in smoke_var("WAREHOUSE_ROWS").split())
    outlets = {o for d in plan.dags for o in d.outlets}
    assert set(checked) <= outlets, f"not built by any DAG: {sorted(set(checked) - outlets)}"
    for dag in plan.of_kind("meltano"):
        assert set(dag.outlets) <= set(checked), f"{dag.dag_id}: every table it loads is checked"
    for dag in plan.of_kind("dbt"):
        assert set(checked) & set(dag.outlets), f"nothing {dag.dag_id} builds is checked"
    # The counts, from the demo's generator for the days demo-seed writes, and dbt's seed.
    days = int(env_example()["DEMO_SEED_DAYS"])
    raw = expected_row_counts(days)
    seed = (ROOT / "dbt_project" / "seeds" / "payment_methods.csv").read_text().splitlines()
    expected = {
        **raw,
        "analytics.dim_customers": raw["raw_shop.customers"],
        "analytics.fct_orders": raw["raw_shop.orders"],
        "analytics.fct_payments": raw["raw_shop.payments"],
        "analytics.marketing_campaign_performance": raw["raw_marketing.campaigns"],
        "analytics.finance_daily_revenue": len(expected_daily_revenue(days)),
        "reporting.exec_daily_summary": len(expected_daily_revenue(days)),  # one row per order date
        "reference.payment_methods": len(seed) - 1,
    }
    assert {t: int(n) for t, n in checked.items()} == {t: expected[t] for t in checked}


@pytest.mark.setup  # reads the demo's dbt manifest (dbt parse, in make setup)
def test_the_provoked_alert_is_the_one_the_smoke_script_waits_for():
    from orchestrator.plan import load_config, plan_from_config

    plan = plan_from_config(load_config(profile="production"), cache_dir=None)
    [state_dag] = plan.of_kind("meltano_state")
    driver = (ROOT / smoke_var("cycle_driver")).read_text()
    assert f'client.trigger("{state_dag.dag_id}"' in driver
    assert smoke_var("ALERT_SUBJECT") == f"Task failed: {state_dag.dag_id}"


def test_every_base_image_has_a_stand_in_recipe():
    built = dict(re.findall(r"^build_one (\S+) (\S+)$", (STANDIN / "build.sh").read_text(), re.M))
    images = {svc["image"] for svc in services().values() if not is_project_image(svc)}
    images.add(next(args for word, args in dockerfile() if word == "FROM"))
    assert images == set(built.values()), f"stand-ins {sorted(built.values())} != base images {sorted(images)}"
    prepared = {"entrypoint", "ca-certificates.crt"}  # build.sh puts these in the build context
    for file in built:
        for line in (STANDIN / file).read_text().splitlines():
            if line.startswith("COPY "):
                for source in line.split()[1:-1]:
                    assert source in prepared or (STANDIN / source).is_file(), f"{file}: COPY {source}: no such file"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.subprocess
def test_the_mail_sink_stand_in_keeps_messages_and_lists_them_as_mailpit_does(tmp_path):
    """The stand-in for axllent/mailpit, run as a process: a real SMTP client sends, mailpit's
    /api/v1/messages lists it (what the smoke script reads)."""
    import json
    import smtplib
    import time
    import urllib.request
    from email.message import EmailMessage

    smtp_port, ui_port = _free_port(), _free_port()
    env = {"MP_SMTP_BIND_ADDR": f"127.0.0.1:{smtp_port}", "MP_UI_BIND_ADDR": f"127.0.0.1:{ui_port}", "PATH": "/usr/bin"}
    proc = subprocess.Popen(["python3", str(STANDIN / "mailpit")], env=env)
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["python3", str(STANDIN / "mailpit"), "readyz"], env=env, capture_output=True).returncode:
            assert time.monotonic() < deadline, "the stand-in mail sink did not start"
            time.sleep(0.2)
        msg = EmailMessage()
        msg["From"], msg["To"] = "airflow-alerts@localhost", "Data Platform <data-platform@example.com>"
        msg["Subject"] = "[Airflow] 🔴 Task failed: meltano_state.meltano_state (try 1/1)"
        msg.set_content("first line\n.a line that starts with a dot\nlast line")
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=5) as client:
            client.send_message(msg)
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/api/v1/messages", timeout=5) as resp:
            listing = json.load(resp)
        assert listing["total"] == 1
        [summary] = listing["messages"]
        assert summary["Subject"] == msg["Subject"]
        assert summary["To"] == [{"Name": "Data Platform", "Address": "data-platform@example.com"}]
        assert summary["From"]["Address"] == "airflow-alerts@localhost"
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/api/v1/message/{summary['ID']}", timeout=5) as resp:
            assert json.load(resp)["Text"] == "first line\n.a line that starts with a dot\nlast line\n"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
