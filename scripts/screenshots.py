"""Take the README's screenshots from a real local Airflow 3 running the demo (`make screenshots`).

    1. starts the embedded profile's Airflow with `orchestrator up --detach` in a throwaway var
       directory (var/screenshots/: its own Airflow home, warehouse, demo data, Meltano state and
       alert outbox, so your var/ is left alone), or reuses the one already up there;
    2. runs one cycle through it (`orchestrator run`: tick -> Meltano -> dbt, by Asset events);
    3. logs in to the UI as the simple auth manager's admin (the password file in the Airflow
       home) with headless Chromium driven by Playwright, and captures PNGs into docs/images/;
    4. renders a real Slack Block Kit message from alerting/rendering/slack_message.py into a local HTML page that
       imitates Slack's layout (no internet, no Slack) and captures it too;
    5. stops Airflow with `orchestrator down` (unless it was already up, or --keep-up).

Needs Debian's `chromium` (/usr/bin/chromium; `apt-get install chromium`) and the `screenshots`
extra (playwright); `make screenshots` installs the extra and runs this script.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "scripts")]  # alerting/ and slack_page from this checkout

OUT = REPO / "docs" / "images"
VAR = REPO / "var" / "screenshots"
VIEWPORT = {"width": 1280, "height": 800}
CHROMIUM = "/usr/bin/chromium"

# file name -> what it shows (the README's captions say the same)
IMAGES = {
    "dag-dependencies.png": "every DAG and Asset: tick -> Meltano -> warehouse Assets -> dbt",
    "asset-graph.png": "one Asset's lineage: the Meltano DAG that writes it, the dbt DAGs that read it",
    "dags-after-cycle.png": "the DAG list after one cycle",
    "dbt-dag-graph.png": "a dbt DAG (dbt_finance): its run, its task and the Assets it emits",
    "dbt-trigger-form.png": "dbt_finance's run form: select, exclude, full_refresh, vars",
    "slack-alert.png": "a failure alert's Block Kit, rendered locally",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="scripts/screenshots.py",
        description="Capture the README's screenshots (docs/images/*.png) from a real local Airflow 3 "
        "running the demo, in headless Chromium (Playwright).",
        epilog="images: " + ", ".join(IMAGES),
        formatter_class=argparse.RawDescriptionHelpFormatter,  # the list on one line, unwrapped
    )
    p.add_argument("--out", type=Path, default=OUT, help=f"where the PNGs go (default: {OUT.relative_to(REPO)})")
    p.add_argument("--var-dir", type=Path, default=VAR, help="the throwaway var directory (default: var/screenshots)")
    p.add_argument("--chromium", default=CHROMIUM, help=f"the Chromium executable (default: {CHROMIUM})")
    p.add_argument("--no-cycle", action="store_true", help="do not run a cycle first (reuse what the home has run)")
    p.add_argument("--keep-up", action="store_true", help="leave Airflow running afterwards")
    p.add_argument("--only", action="append", choices=sorted(IMAGES), help="capture only this image (repeatable)")
    return p.parse_args(argv)


# ---- the local Airflow ------------------------------------------------------------------------


def demo_env(var: Path) -> dict[str, str]:
    """The embedded profile with everything it writes under `var` (the process environment wins
    over orchestration.yml's defaults); alerts are recorded, never sent."""
    var.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "PIPELINE_PROFILE": "embedded",
        "ORCHESTRATOR_VAR_DIR": str(var),
        "ORCHESTRATOR_AIRFLOW_HOME": str(var / "airflow"),
        "DEMO_DATA_DIR": str(var / "demo_data"),
        "WAREHOUSE_DUCKDB_PATH": str(var / "warehouse.duckdb"),
        "MELTANO_DATABASE_URI": f"sqlite:///{var / 'meltano.db'}",
        "ALERTING_OUTBOX_URL": f"sqlite:///{var / 'alerting' / 'outbox.sqlite'}",
        "ALERTING_QUIET": "1",
    }


def orchestrator(env: dict[str, str], *args: str, check: bool = True) -> int:
    exe = Path(sys.executable).with_name("orchestrator")
    argv = [str(exe) if exe.exists() else "orchestrator", *args]
    print("+", " ".join(argv), flush=True)
    rc = subprocess.run(argv, env=env, cwd=REPO).returncode
    if check and rc != 0:
        raise SystemExit(f"`{' '.join(argv)}` exited {rc}")
    return rc


def service_state(var: Path) -> dict:
    state = json.loads((var / "airflow" / "orchestrator-up.json").read_text())
    passwords = json.loads((var / "airflow" / "simple_auth_manager_passwords.json").read_text())
    return {"url": state["url"], "user": "admin", "password": passwords["admin"]}


# ---- the pages ---------------------------------------------------------------------------------


def login(page, url: str, user: str, password: str) -> None:
    """The simple auth manager's login form, as a person would fill it in."""
    page.goto(f"{url}/auth/login")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda u: "/auth/login" not in u, timeout=30_000)


def settle(page, ms: int = 1500) -> None:
    """Let the UI finish fetching and laying out (graphs animate in)."""
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(ms)


def open_page(page, url: str, size: dict[str, int] = VIEWPORT) -> None:
    page.set_viewport_size(size)
    page.goto(url)
    settle(page)


DEPENDENCIES = {"tasks": "Only tasks", "immediate": "External conditions", "all": "All Dag Dependencies"}


def graph_view(page, url: str, dag_id: str, dependencies: str, size: dict[str, int] = VIEWPORT) -> None:
    """A DAG's Graph view, its details panel folded, showing `dependencies` (a key of DEPENDENCIES)."""
    open_page(page, f"{url}/dags/{dag_id}", size)
    if page.get_by_role("button", name="Show Graph (Press g)").count():
        page.get_by_role("button", name="Show Graph (Press g)").click()
        settle(page)
    page.get_by_role("button", name="Options").click()
    select = page.get_by_role("combobox").filter(has_text=re.compile("|".join(DEPENDENCIES.values())))
    if DEPENDENCIES[dependencies] not in select.inner_text():
        select.click()
        page.locator(f"[role=option][data-value='{dependencies}']").first.click()
        settle(page, 800)
    page.keyboard.press("Escape")
    if page.get_by_role("button", name="Collapse Details Panel").count():
        page.get_by_role("button", name="Collapse Details Panel").click()
    page.get_by_role("button", name="Fit View").click()
    settle(page)
    page.mouse.move(1, 1)  # no hover highlight


def nodes_box(page, margin: int = 24) -> dict[str, float]:
    """The graph's nodes' bounding box on the page, with a margin: the screenshot's clip."""
    boxes = [b for n in page.locator(".react-flow__node").all() if (b := n.bounding_box())]
    x0, y0 = min(b["x"] for b in boxes) - margin, min(b["y"] for b in boxes) - margin
    x1 = max(b["x"] + b["width"] for b in boxes) + margin
    y1 = max(b["y"] + b["height"] for b in boxes) + margin
    return {"x": max(x0, 0), "y": max(y0, 0), "width": x1 - max(x0, 0), "height": y1 - max(y0, 0)}


def shoot(page, out: Path, name: str, **kwargs) -> None:
    path = out / name
    page.screenshot(path=str(path), **kwargs)
    print(f"  {name}: {path.stat().st_size // 1024} KB", flush=True)


def capture_flow(page, url: str, out: Path) -> None:
    """Every DAG and Asset: a wide window, so the whole graph fits at a readable zoom, cut to the graph."""
    graph_view(page, url, "tick", "all", {"width": 2880, "height": 1100})
    shoot(page, out, "dag-dependencies.png", clip=nodes_box(page))


def capture_asset(page, url: str, out: Path, asset: str = "analytics.fct_orders") -> None:
    """One Asset's page: the lineage graph zoomed in around it (the wheel, as a person would), its
    extra (dbt's unique_id, materialization, DAG, tag, owner) and its events."""
    open_page(page, f"{url}/assets")
    page.get_by_role("link", name=asset, exact=True).click()
    settle(page)
    box = page.locator(".react-flow__node").filter(has_text=asset).first.bounding_box()
    if box is None:
        raise SystemExit(f"the Asset graph shows no node {asset}")
    page.mouse.move(box["x"] + box["width"] / 2 + 60, box["y"] + box["height"] / 2 + 40)
    for _ in range(5):
        page.mouse.wheel(0, -100)
        page.wait_for_timeout(200)
    settle(page, 800)
    page.mouse.move(1, 1)  # no hover highlight
    shoot(page, out, "asset-graph.png")


def capture_dbt_run(page, url: str, out: Path, dag_id: str = "dbt_finance") -> None:
    """A dbt DAG's latest run in the Graph view with its external conditions: the Assets that set
    it off (and when each last changed), its one `dbt build` task, the Assets it emitted."""
    graph_view(page, url, dag_id, "immediate")  # the Graph view and its options stick for the run page
    open_page(page, f"{url}/dags/{dag_id}")
    run = page.locator(f"a[href*='/dags/{dag_id}/runs/']").first.get_attribute("href")
    open_page(page, url + run)
    page.get_by_role("button", name="Fit View").click()
    settle(page, 800)
    page.mouse.move(1, 1)
    shoot(page, out, "dbt-dag-graph.png")


def capture_trigger_form(page, url: str, out: Path) -> None:
    """dbt_finance's Trigger dialog with its run form filled in: the dialog alone, on a window tall
    enough to show every field."""
    open_page(page, f"{url}/dags/dbt_finance", {"width": 1280, "height": 1400})
    page.get_by_role("button", name="Trigger Dag").first.click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    settle(page, 800)
    fields = dialog.locator("input[type=text], input:not([type])")
    fields.nth(0).fill("fct_payments+")
    fields.nth(1).fill("finance_daily_revenue")
    dialog.locator(".monaco-editor .view-lines").first.click()  # vars: a Monaco JSON editor
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.insert_text('{"start_date": "2026-03-01"}')
    page.keyboard.press("Shift+ControlOrMeta+End")  # what the editor closed by itself after the cursor
    page.keyboard.press("Delete")
    dialog.get_by_text("Run Parameters").first.click(position={"x": 1, "y": 1})  # blur: the form validates
    dialog.get_by_text("Run Parameters").first.click(position={"x": 1, "y": 1})
    settle(page, 500)
    page.mouse.move(1, 1)
    if not dialog.get_by_role("button", name="Trigger").last.is_enabled():
        print("  warning: the Trigger button is disabled: the form does not validate", flush=True)
    shoot(page, out, "dbt-trigger-form.png", clip=dialog.bounding_box())
    page.keyboard.press("Escape")  # nothing is triggered


def capture_airflow(page, url: str, out: Path, only: set[str]) -> None:
    if "dags-after-cycle.png" in only:
        open_page(page, f"{url}/dags", {"width": 1280, "height": 960})
        page.get_by_role("button", name="Show table view").click()
        settle(page)
        shoot(page, out, "dags-after-cycle.png")
    if "dag-dependencies.png" in only:
        capture_flow(page, url, out)
    if "asset-graph.png" in only:
        capture_asset(page, url, out)
    if "dbt-dag-graph.png" in only:
        capture_dbt_run(page, url, out)
    if "dbt-trigger-form.png" in only:
        capture_trigger_form(page, url, out)


# ---- the Slack alert, rendered locally ----------------------------------------------------------


def capture_slack(page, out: Path) -> None:
    from slack_page import alert_html  # scripts/slack_page.py

    page.set_viewport_size({"width": 900, "height": 800})
    page.set_content(alert_html())
    settle(page, 300)
    body = page.locator("body").bounding_box()
    shoot(page, out, "slack-alert.png", clip={"x": 0, "y": 0, "width": 900, "height": body["height"] + 8})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    only = set(args.only or IMAGES)
    args.out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    started = time.monotonic()
    env = demo_env(args.var_dir.resolve())
    airflow_needed = bool(only - {"slack-alert.png"})
    was_up = airflow_needed and orchestrator(env, "status", check=False) == 0
    if airflow_needed and not was_up:
        orchestrator(env, "up", "--detach")
    try:
        if airflow_needed and not args.no_cycle:
            orchestrator(env, "run")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium)
            page = browser.new_page(viewport=VIEWPORT, device_scale_factor=1, color_scheme="light")
            if airflow_needed:
                s = service_state(args.var_dir.resolve())
                login(page, s["url"], s["user"], s["password"])
                capture_airflow(page, s["url"], args.out, only)
            if "slack-alert.png" in only:
                capture_slack(page, args.out)
            browser.close()
    finally:
        if airflow_needed and not was_up and not args.keep_up:
            orchestrator(env, "down", check=False)
    print(f"screenshots done in {time.monotonic() - started:.0f}s: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
