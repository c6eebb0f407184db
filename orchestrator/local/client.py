"""A client for Airflow's public REST API v2 (JWT from the simple auth manager): DAGs, runs,
Asset events, pools."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import httpx

from .airflow_env import AirflowLocalError

TERMINAL_STATES = ("success", "failed")


def parse_ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ok(resp: httpx.Response) -> httpx.Response:
    """The response if 2xx, else AirflowLocalError with Airflow's explanation (its JSON `detail`)."""
    if resp.is_success:
        return resp
    raise AirflowLocalError(f"{resp.request.method} {resp.request.url} -> {resp.status_code}: {resp.text[:2000]}")


class AirflowClient:
    """Airflow's public REST API v2, authenticated with a JWT from the simple auth manager."""

    def __init__(self, base_url: str, username: str, password: str, timeout: float = 60):
        self.base_url, self._credentials = base_url.rstrip("/"), {"username": username, "password": password}
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> AirflowClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _login(self) -> None:
        resp = _ok(self.http.post("/auth/token", json=self._credentials))
        self.http.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        """One API call (path under /api/v2); logs in first, and again once if the token expired."""
        if "Authorization" not in self.http.headers:
            self._login()
        resp = self.http.request(method, f"/api/v2{path}", **kwargs)
        if resp.status_code == 401:
            self._login()
            resp = self.http.request(method, f"/api/v2{path}", **kwargs)
        return resp

    def get(self, path: str, **params) -> Any:
        """GET, retried for up to 20 s on a 5xx. Airflow 3.3.2's asset-event endpoints answer 500 while
        an event's created run is still queued (start_date NULL: apache/airflow#71360, fixed after
        3.3.2), which lasts one scheduler loop for a healthy run."""
        deadline = time.monotonic() + 20
        while True:
            resp = self.request("GET", path, params={k: v for k, v in params.items() if v is not None})
            if resp.status_code < 500 or time.monotonic() > deadline:
                return _ok(resp).json()
            time.sleep(0.5)

    def _all(self, path: str, key: str, **params) -> list[dict]:
        """Every item of a paginated collection (the API caps a page at 100)."""
        items: list[dict] = []
        while True:
            page = self.get(path, limit=100, offset=len(items), **params)
            items += page[key]
            if len(page[key]) < 100 or len(items) >= (page.get("total_entries") or len(items) + 1):
                return items

    # ---- DAGs

    def import_errors(self) -> list[dict]:
        """DAG files the dag-processor could not load: filename (relative to the bundle), stack_trace, ..."""
        return self._all("/importErrors", "import_errors")

    def dag(self, dag_id: str) -> dict | None:
        resp = self.request("GET", f"/dags/{dag_id}")
        if resp.status_code == 404:
            return None
        return _ok(resp).json()

    def wait_for_dags(
        self, dag_ids: Iterable[str], timeout: float = 120, *, parsed_since: datetime | None = None
    ) -> dict[str, dict]:
        """Until the dag-processor has parsed and stored every DAG (with `parsed_since`: parsed again
        since then) and none of their files is an import error now (a DAG parsed once stays listed
        after its file breaks); returns the DAGs by id."""
        wanted, deadline = list(dag_ids), time.monotonic() + timeout

        def fresh(dag: dict) -> bool:
            parsed = parse_ts(dag.get("last_parsed_time"))
            return parsed_since is None or (parsed is not None and parsed >= parsed_since)

        while True:
            broken = {e["filename"] for e in self.import_errors()}
            dags = {d: self.dag(d) for d in wanted}
            ready = {
                d: dag
                for d, dag in dags.items()
                if dag and not dag["is_stale"] and dag["relative_fileloc"] not in broken and fresh(dag)
            }
            if len(ready) == len(wanted):
                return ready
            if time.monotonic() > deadline:
                raise AirflowLocalError(
                    f"DAGs not loaded after {timeout:.0f}s: {sorted(set(wanted) - set(ready))}; "
                    f"import errors: {self.import_errors()}"
                )
            time.sleep(1)

    def unpause(self, dag_id: str, paused: bool = False) -> None:
        _ok(self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": paused}))

    def downstream_dags(self, dag_id: str) -> list[str]:
        """The DAGs a run of `dag_id` sets off through assets, in the order they can run: a DAG joins
        once its asset schedule (AND/OR, as the API gives it) is met by what `dag_id` and the DAGs
        before it produce. A DAG that also waits on an asset nothing in the chain produces is left out."""
        produces: dict[str, set[str]] = {}  # dag_id -> names of the assets its tasks produce
        scheduled: set[str] = set()  # DAGs scheduled on some asset
        for asset in self._all("/assets", "assets"):
            for task in asset["producing_tasks"]:
                produces.setdefault(task["dag_id"], set()).add(asset["name"])
            scheduled.update(d["dag_id"] for d in asset["scheduled_dags"])
        expressions = {d: self.get(f"/dags/{d}/details")["asset_expression"] for d in scheduled - {dag_id}}
        produced, order = set(produces.get(dag_id, ())), []
        while nxt := [d for d in sorted(expressions) if d not in order and _met(expressions[d], produced)]:
            order += nxt
            for d in nxt:
                produced |= produces.get(d, set())
        return order

    # ---- runs

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        """A manual run now; its run_id. (logical_date must be sent, null for "no logical date".)"""
        resp = self.request("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})
        return _ok(resp).json()["dag_run_id"]

    def dag_runs(self, dag_id: str, since: datetime | None = None) -> list[dict]:
        """Runs of a DAG, oldest first; with `since`, only those created (run_after) from then on."""
        return self._all(
            f"/dags/{dag_id}/dagRuns", "dag_runs", order_by="id", run_after_gte=since.isoformat() if since else None
        )

    def wait_for_runs(
        self,
        dag_id: str,
        predicate: Callable[[dict], bool] = lambda r: r["state"] in TERMINAL_STATES,
        *,
        count: int = 1,
        since: datetime | None = None,
        timeout: float = 120,
    ) -> list[dict]:
        """Until at least `count` runs of `dag_id` (since `since`) satisfy `predicate` (default:
        finished); returns those runs."""
        deadline = time.monotonic() + timeout
        while True:
            runs = [r for r in self.dag_runs(dag_id, since) if predicate(r)]
            if len(runs) >= count:
                return runs
            if time.monotonic() > deadline:
                raise AirflowLocalError(
                    f"{dag_id}: {len(runs)}/{count} matching runs after {timeout:.0f}s; "
                    f"runs: {[(r['dag_run_id'], r['state']) for r in self.dag_runs(dag_id, since)]}"
                )
            time.sleep(0.5)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self._all(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", "task_instances")

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1) -> list[dict]:
        """A task try's whole log as Airflow's structured events ({"event": ..., "level": ...,
        "error_detail": [...]}); the first ones, between `::group::Log message source details` and
        `::endgroup::`, name where it was read from (the log file)."""
        resp = self.request(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"full_content": "true", "map_index": map_index},
            headers={"Accept": "application/json"},
        )
        return _ok(resp).json().get("content") or []

    def triggering_asset_events(self, dag_id: str, run_id: str) -> list[dict]:
        """The asset events that created an asset-triggered run (empty for other runs)."""
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}/upstreamAssetEvents")["asset_events"]

    def queued_asset_events(self, dag_id: str) -> list[dict]:
        """Asset events a DAG has received but not yet run on (e.g. one half of an AND)."""
        resp = self.request("GET", f"/dags/{dag_id}/assets/queuedEvents")
        if resp.status_code == 404:  # none queued
            return []
        return _ok(resp).json()["queued_events"]

    # ---- assets and pools

    def asset_events(self, since: datetime | None = None, **filters) -> list[dict]:
        """Asset events, oldest first: name, uri, extra, source_dag_id/run_id/task_id, timestamp,
        created_dagruns. `filters`: any of the API's (source_dag_id=..., source_run_id=...)."""
        return self._all(
            "/assets/events",
            "asset_events",
            order_by="timestamp",
            timestamp_gte=since.isoformat() if since else None,
            **filters,
        )

    def asset_names(self) -> dict[int, str]:
        """Every asset's name by id."""
        return {a["id"]: a["name"] for a in self._all("/assets", "assets")}

    def asset_id(self, name: str) -> int:
        for asset in self._all("/assets", "assets", name_pattern=name):
            if asset["name"] == name:
                return asset["id"]
        raise AirflowLocalError(f"no asset named {name!r}")

    def emit_asset_event(self, name: str, extra: dict | None = None) -> dict:
        """An asset event from outside (as an external loader would post it); the API adds
        extra.from_rest_api = true."""
        resp = self.request("POST", "/assets/events", json={"asset_id": self.asset_id(name), "extra": extra or {}})
        return _ok(resp).json()

    def create_pool(self, name: str, slots: int, description: str = "") -> dict:
        """Create the pool, or set its slots and description if they differ (no write when not)."""
        body = {"name": name, "slots": slots, "description": description, "include_deferred": False}
        resp = self.request("GET", f"/pools/{name}")
        if resp.status_code == 200:
            pool = resp.json()
            if all(pool.get(k) == v for k, v in body.items()):
                return pool
        if resp.status_code == 404:
            resp = self.request("POST", "/pools", json=body)
        if resp.status_code in (200, 409):
            # 3.3.2 validates a pool PATCH body as a whole pool, so send every field (no update_mask).
            resp = self.request("PATCH", f"/pools/{name}", json=body)
        return _ok(resp).json()

    def pools(self) -> list[dict]:
        return self._all("/pools", "pools")


def _met(expression: dict | None, assets: set[str]) -> bool:
    """Whether events for `assets` (names) satisfy a DAG's asset_expression ({"all": [...]},
    {"any": [...]}, {"asset": {...}}); aliases and anything else count as unmet."""
    if not expression:
        return False
    if "all" in expression:
        return all(_met(e, assets) for e in expression["all"])
    if "any" in expression:
        return any(_met(e, assets) for e in expression["any"])
    return expression.get("asset", {}).get("name") in assets
