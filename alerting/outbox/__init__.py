"""The outbox: one row per (alert occurrence, route, channel kind), delivered exactly once.

Any SQLAlchemy URL works (SQLite file by default, PostgreSQL in production). A row is
sent only by whoever wins the claim `UPDATE … SET status='sending' WHERE id=? AND
status='pending'`, so concurrent redeliverers never both send it; the unique key
(alert_id, route, kind) makes enqueueing idempotent. (A process that dies between
the send and `mark_sent` leaves a 'sending' row; it is re-claimed after `lease_s`,
which is the one at-least-once window.)

De-duplication: per (signature, alert kind, route) a window opens at the first occurrence; later
occurrences inside it only increment `count` (and, with thread replies, queue a
"slack_reply" row that posts the count in the original message's thread). A `recovered`
alert closes the task's failure windows, so a relapse is announced again.

Incidents: a failure opens (or extends) one incident per (DAG, task, route) that stays open,
beyond any window, until the next success resolves it; that success is posted in the
failure's thread. Storms: past `threshold` top-level failures on a route within a few
minutes, further failures go into the thread of one "storm" message instead of the channel.
A row may name a `parent_row_id`: it is posted in the thread of that row's message.
An alert with nowhere to be sent (a Slack-only route without Slack credentials) still gets a
`record` row, so every alert is on record.

Retention: `prune(before)` deletes finished rows (sent, failed, suppressed, quiet, recorded;
never pending or sending ones, nor the rows of a still-open incident's first alert, whose
thread its recovery answers in), resolved incidents and expired de-duplication windows and
storm counters older than `before`, at most `limit` rows of each per call. `Notifier.redeliver()`
runs it with `retention_days` from the routing file.

Modules: `store` (`Outbox`, which composes the rest), `tables` (the tables, statuses, row
inserts), `deliveries` (a row's claim and completion, queries), `enqueue` (recording and
de-duplication), `incidents`, `storms`, `retention`.
"""

from .store import Outbox

__all__ = ["Outbox"]
