"""Deterministic demo business: a small shop with a CRM and a marketing team.

Every day of the simulation produces *change records*: new rows, plus new
versions of existing rows (an order that ships, gets completed or returned).
Rows carry `updated_at`, the replication key every extractor uses, so an
incremental load of day N picks up exactly the rows created or changed that day.

The simulation is a pure function of (seed, day): `changes_for_day(7)` is the
same on every machine, and `final_state(7)` is what the warehouse must hold
after loading days 1..7 (latest version of each row by primary key).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

DEFAULT_SEED = 20240101
FIRST_DAY = date(2024, 1, 1)

# Logical source -> table -> ordered columns. The same tables exist in the JSONL
# files (embedded profile), MariaDB (shop) and PostgreSQL (crm, marketing).
TABLES: dict[str, dict[str, tuple[str, ...]]] = {
    "shop": {
        "customers": ("id", "first_name", "last_name", "email", "country", "created_at", "updated_at"),
        "orders": ("id", "customer_id", "campaign_id", "status", "amount", "created_at", "updated_at"),
        "payments": ("id", "order_id", "method", "amount", "created_at", "updated_at"),
    },
    "crm": {
        "accounts": ("id", "customer_id", "company_name", "segment", "account_owner", "created_at", "updated_at"),
    },
    "marketing": {
        "campaigns": ("id", "name", "channel", "budget", "start_date", "end_date", "created_at", "updated_at"),
        "ad_spend": ("id", "campaign_id", "spend_date", "impressions", "clicks", "spend", "created_at", "updated_at"),
    },
}

CUSTOMERS_PER_DAY = 25
ORDERS_PER_DAY = 60
CAMPAIGNS_ON_DAY_ONE = 5
CAMPAIGN_DAYS = 14
RETURN_RATE = 0.1

_FIRST_NAMES = (
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Barbara",
    "Ken",
    "Margaret",
    "Dennis",
    "Frances",
    "Edsger",
    "Radia",
    "John",
    "Karen",
    "Tim",
    "Hedy",
    "Guido",
    "Anita",
    "Bjarne",
    "Sophie",
    "Yukihiro",
)
_LAST_NAMES = (
    "Lovelace",
    "Turing",
    "Hopper",
    "Torvalds",
    "Liskov",
    "Thompson",
    "Hamilton",
    "Ritchie",
    "Allen",
    "Dijkstra",
    "Perlman",
    "McCarthy",
    "Jones",
    "Berners-Lee",
    "Lamarr",
    "van Rossum",
)
_COUNTRIES = ("US", "US", "US", "GB", "DE", "FR", "NL", "CA", "BR", "JP")
_COMPANY_WORDS = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne", "Tyrell", "Soylent")
_SEGMENTS = ("smb", "mid_market", "enterprise")
_ACCOUNT_OWNERS = ("alice@example.com", "bob@example.com", "carol@example.com")
_CHANNELS = ("email", "search", "social", "display")
_PAYMENT_METHODS = ("credit_card", "bank_transfer", "gift_card", "coupon")

Row = dict[str, object]
Changes = dict[str, dict[str, list[Row]]]  # source -> table -> rows


def day_date(day: int) -> date:
    if day < 1:
        raise ValueError(f"days start at 1, got {day}")
    return FIRST_DAY + timedelta(days=day - 1)


def _ts(d: date, seconds: int) -> str:
    return (datetime.combine(d, datetime.min.time()) + timedelta(seconds=seconds)).isoformat()


def _money(rng: random.Random, low: float, high: float) -> float:
    return float(Decimal(rng.uniform(low, high)).quantize(Decimal("0.01")))


@dataclass
class _Simulation:
    """Replays days 1..N in order; ids are sequential, so the past fixes the future."""

    seed: int
    day: int = 0
    customers: list[int] = field(default_factory=list)
    campaigns: dict[int, int] = field(default_factory=dict)  # campaign id -> start day
    orders_by_day: dict[int, list[Row]] = field(default_factory=dict)
    next_ids: dict[str, int] = field(
        default_factory=lambda: {
            "customers": 1,
            "orders": 1,
            "payments": 1,
            "accounts": 1,
            "campaigns": 1,
            "ad_spend": 1,
        }
    )

    def _id(self, table: str) -> int:
        value = self.next_ids[table]
        self.next_ids[table] = value + 1
        return value

    def step(self) -> Changes:
        self.day += 1
        d = day_date(self.day)
        rng = random.Random(f"{self.seed}:{self.day}")
        out: Changes = {s: {t: [] for t in tables} for s, tables in TABLES.items()}

        # Marketing: campaigns start on day one and then one a day; each runs CAMPAIGN_DAYS days.
        for _ in range(CAMPAIGNS_ON_DAY_ONE if self.day == 1 else 1):
            cid = self._id("campaigns")
            self.campaigns[cid] = self.day
            created = _ts(d, rng.randrange(0, 3600))
            out["marketing"]["campaigns"].append(
                {
                    "id": cid,
                    "name": f"{rng.choice(_CHANNELS)}-{d:%Y%m%d}-{cid}",
                    "channel": rng.choice(_CHANNELS),
                    "budget": _money(rng, 500, 5000),
                    "start_date": d.isoformat(),
                    "end_date": (d + timedelta(days=CAMPAIGN_DAYS - 1)).isoformat(),
                    "created_at": created,
                    "updated_at": created,
                }
            )
        active = sorted(c for c, start in self.campaigns.items() if start <= self.day < start + CAMPAIGN_DAYS)
        for cid in active:
            impressions = rng.randrange(1000, 20000)
            clicks = rng.randrange(10, impressions // 20)
            created = _ts(d, 86000 + rng.randrange(0, 300))
            out["marketing"]["ad_spend"].append(
                {
                    "id": self._id("ad_spend"),
                    "campaign_id": cid,
                    "spend_date": d.isoformat(),
                    "impressions": impressions,
                    "clicks": clicks,
                    "spend": _money(rng, 20, 400),
                    "created_at": created,
                    "updated_at": created,
                }
            )

        # Shop: new customers, some of them businesses with a CRM account.
        for _ in range(CUSTOMERS_PER_DAY):
            cust = self._id("customers")
            self.customers.append(cust)
            first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
            created = _ts(d, rng.randrange(3600, 80000))
            out["shop"]["customers"].append(
                {
                    "id": cust,
                    "first_name": first,
                    "last_name": last,
                    "email": f"{first}.{last}.{cust}@example.com".lower().replace(" ", ""),
                    "country": rng.choice(_COUNTRIES),
                    "created_at": created,
                    "updated_at": created,
                }
            )
            if cust % 4 == 0:
                out["crm"]["accounts"].append(
                    {
                        "id": self._id("accounts"),
                        "customer_id": cust,
                        "company_name": f"{rng.choice(_COMPANY_WORDS)} {last} {cust}",
                        "segment": rng.choice(_SEGMENTS),
                        "account_owner": rng.choice(_ACCOUNT_OWNERS),
                        "created_at": created,
                        "updated_at": created,
                    }
                )

        # Yesterday's orders are settled today: completed or returned (a new version of the row).
        for order in self.orders_by_day.get(self.day - 1, []):
            changed = dict(
                order,
                status="returned" if rng.random() < RETURN_RATE else "completed",
                updated_at=_ts(d, rng.randrange(0, 3600)),
            )
            out["shop"]["orders"].append(changed)

        todays_orders: list[Row] = []
        for _ in range(ORDERS_PER_DAY):
            oid = self._id("orders")
            created = _ts(d, rng.randrange(3600, 86000))
            amount = _money(rng, 5, 500)
            order = {
                "id": oid,
                "customer_id": rng.choice(self.customers),
                "campaign_id": rng.choice(active) if active and rng.random() < 0.4 else None,
                "status": "placed",
                "amount": amount,
                "created_at": created,
                "updated_at": created,
            }
            todays_orders.append(order)
            # Most orders are paid at once; some in two parts (gift card + card).
            parts = [amount] if rng.random() < 0.85 else _split(amount, rng)
            methods = [rng.choice(_PAYMENT_METHODS)] if len(parts) == 1 else ["gift_card", "credit_card"]
            for part, method in zip(parts, methods, strict=False):
                out["shop"]["payments"].append(
                    {
                        "id": self._id("payments"),
                        "order_id": oid,
                        "method": method,
                        "amount": part,
                        "created_at": created,
                        "updated_at": created,
                    }
                )
        out["shop"]["orders"].extend(todays_orders)
        self.orders_by_day[self.day] = todays_orders
        self.orders_by_day.pop(self.day - 2, None)

        # Rows are emitted sorted by the replication key, as a database tap would read them.
        for tables in out.values():
            for rows in tables.values():
                rows.sort(key=lambda r: (r["updated_at"], r["id"]))
        return out


def _split(amount: float, rng: random.Random) -> list[float]:
    first = float(Decimal(amount * rng.uniform(0.2, 0.6)).quantize(Decimal("0.01")))
    return [first, float(Decimal(str(amount)) - Decimal(str(first)))]


def changes_through(last_day: int, seed: int = DEFAULT_SEED) -> list[Changes]:
    """The change records of days 1..last_day, in order."""
    sim = _Simulation(seed)
    return [sim.step() for _ in range(last_day)]


def changes_for_day(day: int, seed: int = DEFAULT_SEED) -> Changes:
    return changes_through(day, seed)[-1]


def final_state(last_day: int, seed: int = DEFAULT_SEED) -> dict[str, dict[str, dict[int, Row]]]:
    """What a correct warehouse holds after loading days 1..last_day: latest row per id."""
    state: dict[str, dict[str, dict[int, Row]]] = {s: {t: {} for t in ts} for s, ts in TABLES.items()}
    for changes in changes_through(last_day, seed):
        for source, tables in changes.items():
            for table, rows in tables.items():
                for row in rows:
                    state[source][table][int(str(row["id"]))] = row
    return state
