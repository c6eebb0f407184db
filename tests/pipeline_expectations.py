"""What a correct load must produce, computed from the generator alone."""

from __future__ import annotations

from demo_data.generator import TABLES, changes_through, final_state


def expected_row_counts(last_day: int, sources=TABLES) -> dict[str, int]:
    state = final_state(last_day)
    return {f"raw_{s}.{t}": len(state[s][t]) for s in sources for t in TABLES[s]}


def expected_extracted(day: int, source: str) -> dict[str, int]:
    """Records an incremental tap reads on `day`, after day-1 was loaded: that day's change
    records, plus the rows equal to the previous bookmark (Singer re-reads it: at-least-once)."""
    history = changes_through(day)
    counts = {}
    for table, rows in history[-1][source].items():
        if day == 1:
            counts[table] = len(rows)
            continue
        previous = [r for c in history[:-1] for r in c[source][table]]
        bookmark = max((r["updated_at"] for r in previous), default=None)
        counts[table] = len(rows) + sum(1 for r in previous if r["updated_at"] == bookmark)
    return {t: n for t, n in counts.items() if n}
