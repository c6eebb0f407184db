"""What a correct load must produce, computed from the generator alone."""

from __future__ import annotations

from decimal import Decimal

from demo_data.generator import TABLES, changes_through, final_state


def expected_row_counts(last_day: int, sources=TABLES) -> dict[str, int]:
    state = final_state(last_day)
    return {f"raw_{s}.{t}": len(state[s][t]) for s in sources for t in TABLES[s]}


def expected_extracted(day: int, source: str, *, database: bool = False) -> dict[str, int]:
    """Records an incremental tap reads in the cycle of `day`, the cycles of days 1..day-1 done.

    Singer taps read `replication_key >= bookmark` (at-least-once), the bookmark being the
    largest key read before. A file tap sees every change record (all versions of a row);
    a database tap sees only each row's current version.
    """
    history = changes_through(day)
    counts = {}
    for table in TABLES[source]:
        if database:
            before = final_state(day - 1)[source][table].values() if day > 1 else []
            now = list(final_state(day)[source][table].values())
        else:
            before = [r for c in history[:-1] for r in c[source][table]]
            now = [r for c in history for r in c[source][table]]
        bookmark = max((r["updated_at"] for r in before), default="")
        counts[table] = sum(1 for r in now if r["updated_at"] >= bookmark)
    return {t: n for t, n in counts.items() if n}


def _money(values) -> Decimal:
    return sum((Decimal(str(v)) for v in values), Decimal("0.00"))


def expected_daily_revenue(last_day: int) -> dict[str, tuple[int, Decimal, Decimal, Decimal]]:
    """order_date -> (orders, gross, net, refunds), orders counted by current status."""
    by_date: dict[str, list[dict]] = {}
    for o in final_state(last_day)["shop"]["orders"].values():
        by_date.setdefault(o["created_at"][:10], []).append(o)
    return {
        d: (
            len(os),
            _money(o["amount"] for o in os),
            _money(o["amount"] for o in os if o["status"] != "returned"),
            _money(o["amount"] for o in os if o["status"] == "returned"),
        )
        for d, os in by_date.items()
    }


def expected_campaign_performance(last_day: int) -> dict[int, tuple[Decimal, int, Decimal]]:
    """campaign_id -> (spend, attributed orders, attributed revenue), returned orders excluded."""
    state = final_state(last_day)
    out = {}
    for cid in state["marketing"]["campaigns"]:
        spend = _money(s["spend"] for s in state["marketing"]["ad_spend"].values() if s["campaign_id"] == cid)
        attributed = [
            o for o in state["shop"]["orders"].values() if o["campaign_id"] == cid and o["status"] != "returned"
        ]
        out[cid] = (spend, len(attributed), _money(o["amount"] for o in attributed))
    return out


def assert_marts_match(rows_daily, rows_campaigns, last_day: int) -> None:
    """Compare the marts dbt built (rows as returned by the warehouse) with the generator."""
    actual_daily = {
        str(d)[:10]: (
            int(n),
            Decimal(str(g)).quantize(Decimal("0.01")),
            Decimal(str(nr)).quantize(Decimal("0.01")),
            Decimal(str(r)).quantize(Decimal("0.01")),
        )
        for d, n, g, nr, r in rows_daily
    }
    assert actual_daily == expected_daily_revenue(last_day)
    actual_campaigns = {
        int(c): (Decimal(str(s)).quantize(Decimal("0.01")), int(n), Decimal(str(rev)).quantize(Decimal("0.01")))
        for c, s, n, rev in rows_campaigns
    }
    assert actual_campaigns == expected_campaign_performance(last_day)


DAILY_SQL = "select order_date, orders, gross_revenue, net_revenue, refunds from analytics.finance_daily_revenue"
CAMPAIGN_SQL = (
    "select campaign_id, spend, attributed_orders, attributed_revenue from analytics.marketing_campaign_performance"
)
