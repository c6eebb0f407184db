"""Alert delivery, measured: latency to Slack, behaviour under each fault, and noise under a storm.

Everything is real except Slack itself: slack-sdk talks HTTP to a local Slack-compatible
server (tests/alerting_fakes.py FakeSlack) and smtplib to aiosmtpd; the outbox is SQLite.

    .venv/bin/python bench/alert_latency.py [--repeats 20] [--json var/bench/alerts.json]

1. notify() -> message received by the Slack server, per alert (median of --repeats);
2. each fault (429 short/long Retry-After, 500, timeout, bad token, SMTP refusing, both down
   then back): how long notify() took, what reached someone at once, what the outbox held, and
   after the fault cleared and one redeliver(): messages received (duplicates counted);
3. 100 failures of 100 different tasks in one cycle, and 100 repeats of one failure: messages.

The end-to-end figure (a task's final failure in a real Airflow -> Slack) is recorded by
tests/test_e2e_airflow.py in var/bench/alert_latency_e2e.json (run it with
ALERT_LATENCY_E2E_JSON=var/bench/alert_latency_e2e.json) and summarised here when present.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the test fakes: tests/alerting_fakes.py

from alerting_fakes import FakeSlack, FakeSMTP  # noqa: E402

from alerting.delivery import Notifier  # noqa: E402
from alerting.events import Alert  # noqa: E402
from alerting.outbox import Outbox  # noqa: E402
from alerting.routing import RoutingConfig  # noqa: E402

TOKEN = "xoxb-bench"
UTC = UTC


def notifier(slack: FakeSlack, smtp: FakeSMTP, db: Path, **over) -> Notifier:
    cfg = {
        "slack": {"token_env": "BENCH_SLACK_TOKEN", "base_url": slack.api_url, "timeout_s": 1},
        "email": {"smtp_host": "127.0.0.1", "smtp_port": smtp.port, "timeout_s": 2},
        "thread_replies": True,
        "default": {"slack_channel": "#alerts", "emails": ["data@example.com"]},
    }
    cfg.update(over)
    return Notifier(RoutingConfig.from_dict(cfg), Outbox(f"sqlite:///{db}"))


def alert(i: int, **over) -> Alert:
    kw = dict(
        kind="task_failed",
        dag_id=f"meltano_tap_{i}",
        task_id="meltano_run",
        run_id=f"scheduled__{i}",
        try_number=3,
        max_tries=3,
        error=f"source {i} refused the connection",
        occurred_at=datetime.now(UTC),
    )
    kw.update(over)
    return Alert(**kw)


def latency(repeats: int, tmp: Path) -> dict:
    with FakeSlack(tokens={TOKEN}) as slack, FakeSMTP() as smtp:
        n = notifier(slack, smtp, tmp / "latency.db")
        samples = []
        for i in range(repeats):
            t0 = time.time()
            n.notify(alert(i))
            samples.append(slack.messages[-1].received_at - t0)
    return {"median_s": statistics.median(samples), "min_s": min(samples), "max_s": max(samples), "n": repeats}


FAULTS = {
    "429, Retry-After 1 s": lambda s, m: s.fail_next("429", retry_after=1),
    "429, Retry-After 30 s": lambda s, m: s.fail_next("429", retry_after=30),
    "500 once": lambda s, m: s.fail_next("500"),
    "500 persistent": lambda s, m: setattr(s, "mode", "500"),
    "timeout (no answer 5 s)": lambda s, m: s.fail_next("sleep", 5),
    "bad token (invalid_auth)": lambda s, m: setattr(s, "mode", "invalid_auth"),
    "SMTP refusing (email-only route)": lambda s, m: m.stop(),
    "Slack and SMTP down": lambda s, m: (setattr(s, "mode", "500"), m.stop()),
}


def faults(tmp: Path) -> list[dict]:
    rows = []
    for i, (name, inject) in enumerate(FAULTS.items()):
        with FakeSlack(tokens={TOKEN}) as slack:
            smtp = FakeSMTP().start()
            over = {"default": {"emails": ["data@example.com"]}} if name.startswith("SMTP") else {}
            n = notifier(slack, smtp, tmp / f"fault{i}.db", **over)
            inject(slack, smtp)
            t0 = time.monotonic()
            res = n.notify(alert(i))
            took = time.monotonic() - t0
            at_once = sorted({d.kind for d in res.deliveries if d.status == "sent"})
            held = sorted(f"{r['kind']}:{r['status']}" for r in n.outbox.rows())
            slack.mode = "ok"  # the fault clears
            if smtp._controller is None:
                smtp.start()
            n.redeliver(include_future=True)  # what the alerting DAG does every 5 min
            posted = len(slack.posted())
            mails = len(smtp.received)
            smtp.stop()
            rows.append(
                {
                    "fault": name,
                    "notify_s": round(took, 2),
                    "delivered_at_once": at_once or ["nothing"],
                    "outbox_after_notify": held,
                    "slack_messages_in_the_end": posted,
                    "emails_in_the_end": mails,
                    "error_raised": res.error,
                }
            )
    return rows


def storm(tmp: Path) -> dict:
    out = {}
    with FakeSlack(tokens={TOKEN}) as slack, FakeSMTP() as smtp:
        n = notifier(slack, smtp, tmp / "storm.db")
        t0 = time.monotonic()
        for i in range(100):
            n.notify(alert(i))
        out["100 different failures"] = {
            "seconds": round(time.monotonic() - t0, 2),
            "top_level_messages": len([m for m in slack.posted() if "thread_ts" not in m]),
            "in_the_storm_thread": len([m for m in slack.posted() if "thread_ts" in m]),
        }
    with FakeSlack(tokens={TOKEN}) as slack, FakeSMTP() as smtp:
        n = notifier(slack, smtp, tmp / "repeat.db")
        t0 = time.monotonic()
        for i in range(100):
            n.notify(
                alert(
                    0,
                    run_id=f"r{i}",
                    error=f"source refused the connection (attempt id {1000 + i})",
                    occurred_at=datetime.now(UTC) + timedelta(seconds=i),
                )
            )
        out["100 repeats of one failure"] = {
            "seconds": round(time.monotonic() - t0, 2),
            "top_level_messages": len([m for m in slack.posted() if "thread_ts" not in m]),
            "thread_replies (counter)": len([m for m in slack.posted() if "thread_ts" in m]),
        }
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", default=str(ROOT / "var" / "bench" / "alerts.json"))
    args = parser.parse_args(argv)
    os.environ["BENCH_SLACK_TOKEN"] = TOKEN
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        result = {"latency": latency(args.repeats, tmp), "faults": faults(tmp), "storm": storm(tmp)}
    e2e = ROOT / "var" / "bench" / "alert_latency_e2e.json"
    if e2e.exists():
        s = json.loads(e2e.read_text()).get("failure_to_slack_s", [])
        if s:
            result["e2e_failure_to_slack"] = {
                "median_s": statistics.median(s),
                "min_s": min(s),
                "max_s": max(s),
                "n": len(s),
            }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1))
    lat = result["latency"]
    print(
        f"notify() -> Slack server received: median {lat['median_s'] * 1000:.1f} ms "
        f"(min {lat['min_s'] * 1000:.1f}, max {lat['max_s'] * 1000:.1f}, n={lat['n']})"
    )
    if "e2e_failure_to_slack" in result:
        e = result["e2e_failure_to_slack"]
        print(
            f"Airflow task final failure -> Slack: median {e['median_s']:.2f} s "
            f"(min {e['min_s']:.2f}, max {e['max_s']:.2f}, n={e['n']})"
        )
    print(
        "\n| fault | notify() s | reached someone at once | outbox after notify | Slack msgs in the end | "
        "e-mails in the end |\n|---|---|---|---|---|---|"
    )
    for r in result["faults"]:
        print(
            f"| {r['fault']} | {r['notify_s']} | {', '.join(r['delivered_at_once'])} | "
            f"{', '.join(r['outbox_after_notify'])} | {r['slack_messages_in_the_end']} | {r['emails_in_the_end']} |"
        )
    print()
    for k, v in result["storm"].items():
        print(f"{k}: " + ", ".join(f"{a} {b}" for a, b in v.items()))
    return result


if __name__ == "__main__":
    main()
