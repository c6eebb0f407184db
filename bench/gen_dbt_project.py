#!/usr/bin/env python3
"""Generate a realistic dbt project of N models, and its manifest, for benchmarks.

    python bench/gen_dbt_project.py --models 1000 --tags 20 --out /tmp/bench_1k [--seed 42] [--parse]

Writes a real dbt project (dbt-duckdb profile) into --out and, without running
dbt, ``<out>/target/manifest.json`` in dbt's manifest v12 format, as dbt-core
1.11's ``dbt parse`` writes it (same unique_ids, tags and their order, configs,
relations, dependencies, tests, sources, exposures, parent/child maps; macros
are synthetic but of realistic number and size). With --parse it then runs the
real ``dbt parse`` on the project: ``target/manifest.json`` becomes dbt's own,
the directly written one is kept as ``target/manifest.direct.json``, and the
two are compared (exit status 1 on a difference). See bench/README.md.

Standard library only (dbt is needed for --parse alone). Deterministic: the
same --models/--tags/--seed give byte-identical files, wherever --out is.

Shape of the project (fractions are of --models, the enabled models):
  * layers: ~10% staging (views, one per raw table, reading dbt sources whose
    schemas are ``raw_<system>``), ~30% intermediate (views, ~1 in 6 of them
    ephemeral, i.e. ~5% of all models), the rest marts (tables, ~15% of them
    incremental). Custom schemas per layer: staging, intermediate, marts (the
    project's generate_schema_name uses them as-is). Each model refs 1-4
    upstream models: staging read 1-3 source tables; intermediate models read
    staging models (and sometimes an earlier intermediate); marts read
    intermediate/staging models (and sometimes an earlier mart, e.g. a dim).
    A few marts are disabled (``enabled=false``), a few models have an alias.
  * orchestration tags: ``domain_<k>`` for k < --tags, set per domain folder in
    dbt_project.yml (``models/<layer>/domain_<k>/``), with ``meta.owner``.
    domain_0 is the shared/core domain. A model of domain k refs its own
    domain mostly, domain_0 often, and another domain j only if j < k, so the
    domain graph has no cycle. ~3% of the models carry a SECOND domain tag
    (of a lower domain, set in the model's config), listed after the folder's
    one: with "first-listed wins" they stay in their folder's domain.
  * informational tags: daily / hourly (marts), pii, sla_critical, finance_close,
    experimental... on folders and models.
  * tests: unique + not_null on every (non-ephemeral) model's id column, plus
    relationships / not_null / accepted_values on some columns (~2.6 per
    model), and a few on sources. One exposure (dashboard) per domain.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

PROJECT = "bench_analytics"
DATABASE = "warehouse"          # dbt-duckdb: the database is the file's stem (warehouse.duckdb)
TARGET_SCHEMA = "main"
TEST_SCHEMA = "dbt_test__audit"
LAYER_SCHEMA = {"staging": "staging", "intermediate": "intermediate", "marts": "marts"}
LAYER_MATERIALIZED = {"staging": "view", "intermediate": "view", "marts": "table"}
DBT_VERSION = "1.11.16"
SCHEMA_VERSION = "https://schemas.getdbt.com/dbt/manifest/v12.json"
# A fixed clock, so that the output does not depend on when it was generated.
EPOCH = 1795267670.0
GENERATED_AT = "2026-11-21T13:27:50.000000Z"
STARTED_AT = "2026-11-21T13:27:49.000000+00:00"

AREAS = ["core", "finance", "marketing", "sales", "product", "support", "billing", "growth",
         "supply_chain", "logistics", "risk", "people", "inventory", "procurement", "partners",
         "security", "legal", "customer_success", "data_science", "operations"]
SYSTEMS = ["app_db", "salesforce", "stripe", "hubspot", "zendesk", "shopify", "netsuite", "jira",
           "github", "segment", "google_ads", "facebook_ads", "linkedin_ads", "intercom", "workday",
           "greenhouse", "quickbooks", "marketo", "braze", "mixpanel", "amplitude", "chargebee",
           "recurly", "freshdesk", "pipedrive", "mailchimp", "sendgrid", "twilio", "okta", "bamboohr",
           "servicenow", "sap", "oracle_erp", "dynamics", "snowplow", "heap", "pendo", "gong",
           "outreach", "zuora", "adyen", "paypal", "klaviyo", "iterable", "airtable", "asana"]
SYSTEM_SUFFIXES = ["", "_eu", "_us", "_apac", "_legacy", "_v2"]
ENTITIES = ["account", "user", "customer", "order", "order_item", "invoice", "payment", "refund",
            "subscription", "plan", "product", "price", "campaign", "ad_group", "ad", "click",
            "impression", "session", "event", "page_view", "ticket", "comment", "agent", "contact",
            "lead", "opportunity", "deal", "quote", "contract", "employee", "department",
            "candidate", "application", "shipment", "carrier", "warehouse", "stock_level",
            "supplier", "purchase_order", "return", "coupon", "discount", "review", "cart",
            "checkout", "device", "message", "email_send", "notification", "feature_flag",
            "experiment", "repository", "pull_request", "issue", "sprint", "project", "task",
            "time_entry", "expense", "budget", "ledger_entry", "journal", "tax_rate", "currency",
            "exchange_rate", "region", "store", "location", "survey", "response", "incident",
            "alert", "vendor", "asset", "license", "seat", "usage_record", "credit_note", "dispute"]
TABLE_SUFFIXES = ["", "_history", "_events", "_lines", "_attributes", "_snapshots", "_daily", "_archive"]
ATTRIBUTES = [
    ("status", "Lifecycle status of the record."), ("amount", "Amount in the record's currency."),
    ("currency", "ISO-4217 currency code."), ("name", "Display name."), ("email", "Email address (PII)."),
    ("country", "ISO-3166 country code."), ("channel", "Acquisition or delivery channel."),
    ("quantity", "Number of units."), ("unit_price", "Price per unit."), ("is_active", "Whether the record is active."),
    ("is_deleted", "Soft-delete flag set by the source system."), ("category", "Business category."),
    ("priority", "Priority as set by the operator."), ("source_system", "System the record comes from."),
    ("region", "Sales region."), ("segment", "Customer segment: smb, mid_market or enterprise."),
    ("score", "Model score between 0 and 1."), ("duration_seconds", "Duration in seconds."),
    ("discount_amount", "Discount applied, in the record's currency."), ("tax_amount", "Tax amount."),
    ("title", "Free-text title."), ("type", "Record type."), ("owner_email", "Email of the owner (PII)."),
    ("started_at", "When it started (UTC)."), ("ended_at", "When it ended (UTC); null while open."),
    ("closed_at", "When it was closed (UTC)."), ("valid_from", "Start of validity (SCD2)."),
    ("valid_to", "End of validity (SCD2); null for the current version."), ("version", "Version number."),
    ("external_ref", "Identifier in the source system."),
]
METRICS = [("total_amount", "sum(amount)"), ("n_records", "count(*)"), ("avg_amount", "avg(amount)"),
           ("first_seen_at", "min(created_at)"), ("last_seen_at", "max(updated_at)"),
           ("n_distinct_users", "count(distinct user_id)"), ("max_score", "max(score)")]
INT_VERBS = ["joined", "enriched", "deduped", "aggregated", "pivoted", "unioned", "filtered", "mapped",
             "scd", "daily", "rollup", "normalized", "sessionized", "ranked", "bridged"]
MART_KINDS = [("fct", 0.45), ("dim", 0.35), ("agg", 0.20)]
AGG_GRAINS = ["daily", "weekly", "monthly", "by_region", "by_channel", "by_segment"]
STATUS_VALUES = ["active", "inactive", "pending", "closed"]


# --------------------------------------------------------------------------- plan

@dataclass
class Domain:
    k: int
    area: str

    @property
    def tag(self) -> str:
        return f"domain_{self.k}"

    @property
    def owner(self) -> str:
        return f"{self.area.replace('_', '-')}-data@example.com"


@dataclass
class Table:
    system: str
    name: str
    columns: list          # [(name, description)]
    domain: int
    tests: list = field(default_factory=list)   # [("not_null"|"unique", column)]

    @property
    def unique_id(self) -> str:
        return f"source.{PROJECT}.{self.system}.{self.name}"


@dataclass
class System:
    name: str
    domain: int
    tables: list
    freshness: bool
    description: str


@dataclass
class Model:
    idx: int
    name: str
    layer: str
    domain: int
    entity: str
    id_col: str
    columns: list                  # [(name, description)] documented in yml (id first)
    refs: list = field(default_factory=list)       # model names, in SQL order
    sources: list = field(default_factory=list)    # Table objects, in SQL order
    materialized: str = "view"
    extra_tags: list = field(default_factory=list)  # model-level config tags (incl. a 2nd domain)
    alias: str | None = None
    incremental: bool = False
    enabled: bool = True
    description: str = ""
    tests: list = field(default_factory=list)  # [(test_name, column, kwargs)]
    mart_kind: str = ""

    @property
    def unique_id(self) -> str:
        return f"model.{PROJECT}.{self.name}"

    @property
    def folder(self) -> str:
        return f"{self.layer}/domain_{self.domain}"


@dataclass
class Exposure:
    name: str
    domain: int
    refs: list
    label: str
    url: str


@dataclass
class Plan:
    n_models: int
    n_tags: int
    seed: int
    domains: list
    systems: list
    models: list         # enabled and disabled, in creation order
    exposures: list

    def by_name(self):
        return {m.name: m for m in self.models}


def _allocate(total: int, weights: list, minimum: int) -> list:
    """Largest-remainder allocation of `total` over `weights`, each getting >= minimum if possible."""
    n = len(weights)
    if total >= minimum * n:
        base = [minimum] * n
        rest = total - minimum * n
    else:
        base = [1 if i < total else 0 for i in range(n)]
        return base
    s = sum(weights)
    quotas = [rest * w / s for w in weights]
    alloc = [int(q) for q in quotas]
    order = sorted(range(n), key=lambda i: (-(quotas[i] - alloc[i]), i))
    for i in order[: rest - sum(alloc)]:
        alloc[i] += 1
    return [b + a for b, a in zip(base, alloc)]


def _singular(word: str) -> str:
    for suffix in TABLE_SUFFIXES[1:]:
        if word.endswith(suffix):
            word = word[: -len(suffix)]
    return word[:-1] if word.endswith("s") and not word.endswith("ss") else word


def _plural(entity: str) -> str:
    if entity.endswith("y") and not entity.endswith(("ay", "ey")):
        return entity[:-1] + "ies"
    if entity.endswith(("s", "x")):
        return entity + "es"
    return entity + "s"


def build_plan(n_models: int, n_tags: int, seed: int = 42) -> Plan:
    if n_models < 1 or n_tags < 1:
        raise ValueError("--models and --tags must be >= 1")
    rng = random.Random(seed)
    domains = [Domain(k, AREAS[k] if k < len(AREAS) else f"area_{k}") for k in range(n_tags)]
    weights = [3.0] + [rng.uniform(0.5, 1.5) / (1 + 0.05 * k) for k in range(1, n_tags)]

    n_stg = max(1, round(n_models * 0.10))
    n_int = round(n_models * 0.30) if n_models > 2 else 0
    n_mart = n_models - n_stg - n_int
    per_domain = {
        "staging": _allocate(n_stg, weights, 1),
        "intermediate": _allocate(n_int, weights, 1),
        "marts": _allocate(n_mart, weights, 1),
    }

    # ---- sources: each domain owns a few systems (raw_<system>), one table per staging model + spares
    system_names = [s + suf for suf in SYSTEM_SUFFIXES for s in SYSTEMS]
    systems: list[System] = []
    n_sys = 0
    for d in domains:
        need = per_domain["staging"][d.k]
        if need == 0:
            continue
        capacity = 0
        while capacity < need + max(1, need // 20):
            name = system_names[n_sys] if n_sys < len(system_names) else f"system_{n_sys}"
            n_sys += 1
            n_tables = rng.randint(4, 24)
            ents = rng.sample(ENTITIES, min(len(ENTITIES), n_tables))
            tables, seen = [], set()
            for e in ents:
                tname = _plural(e) + rng.choice(TABLE_SUFFIXES[:3] if rng.random() < 0.2 else [""])
                if tname in seen:
                    continue
                seen.add(tname)
                cols = [("id", "Primary key in the source system.")]
                for other in rng.sample(ENTITIES, rng.randint(0, 3)):
                    if other != e:
                        cols.append((f"{other}_id", f"Reference to the {other.replace('_', ' ')}."))
                for a, desc in rng.sample(ATTRIBUTES, rng.randint(3, 9)):
                    cols.append((a, desc))
                cols += [("created_at", "Creation time in the source (UTC)."),
                         ("updated_at", "Last update in the source (UTC)."),
                         ("_sdc_batched_at", "When the loader wrote the row.")]
                tables.append(Table(name, tname, cols, d.k))
            systems.append(System(name, d.k, tables, freshness=rng.random() < 0.35,
                                  description=f"Raw {name} data loaded by Meltano (tap-{name.replace('_', '-')})."))
            capacity += len(tables)

    models: list[Model] = []
    names: set = set()
    by_domain_layer: dict = {(d.k, layer): [] for d in domains for layer in per_domain}

    def unique_name(base: str) -> str:
        name, i = base, 2
        while name in names:
            name, i = f"{base}_{i}", i + 1
        names.add(name)
        return name

    def model_columns(id_col: str, parents: list, n_attr: int, extra: list) -> list:
        cols = [(id_col, "Primary key." if rng.random() < 0.5 else f"Unique identifier of the {id_col[:-3].replace('_', ' ')}.")]
        seen = {id_col}
        for p in parents:
            if p.id_col not in seen:
                seen.add(p.id_col)
                cols.append((p.id_col, f"Foreign key to {p.name}."))
        pool = [c for p in parents for c in p.columns if c[0] not in seen and not c[0].endswith("_id")]
        rng.shuffle(pool)
        for c in pool[:n_attr] + extra:
            if c[0] not in seen:
                seen.add(c[0])
                cols.append(c)
        return cols

    # ---- staging: one per source table (in order), sometimes unioning 1-2 sibling tables
    for d in domains:
        tables = [t for s in systems if s.domain == d.k for t in s.tables]
        for i in range(per_domain["staging"][d.k]):
            t = tables[i]
            srcs = [t]
            r = rng.random()
            siblings = [x for x in tables if x.system == t.system and x is not t]
            if r < 0.15 and siblings:
                srcs += rng.sample(siblings, min(len(siblings), 1 if r < 0.12 else 2))
            entity = _singular(t.name)
            name = unique_name(f"stg_{t.system}__{t.name}")
            cols = [(f"{entity}_id", f"Primary key ({t.system}.{t.name}.id).")]
            cols += [c for c in t.columns[1:] if c[0] != "_sdc_batched_at"]
            m = Model(len(models), name, "staging", d.k, entity, f"{entity}_id", cols, sources=srcs)
            m.description = f"{t.name.replace('_', ' ').capitalize()} from {t.system}, one row per {entity.replace('_', ' ')}, cleaned and typed."
            models.append(m)
            by_domain_layer[(d.k, "staging")].append(m)

    def pick_domain(k: int, layer_pools: list) -> int:
        """Own domain mostly, then core (domain_0), then a lower domain: never a higher one."""
        r = rng.random()
        if k == 0:
            return 0
        if r < 0.70:
            cand = k
        elif r < 0.90 or k == 1:
            cand = 0
        else:
            cand = rng.randrange(1, k)
        for c in (cand, k, 0, *range(k - 1, 0, -1)):
            if any(by_domain_layer[(c, layer)] for layer in layer_pools):
                return c
        return -1

    def pick_parents(k: int, lower: list, same: str, n_refs: int, same_share: float) -> list:
        parents = []
        for _ in range(n_refs * 3):
            if len(parents) == n_refs:
                break
            use_same = rng.random() < same_share
            pools = [same] if use_same else lower
            c = pick_domain(k, pools)
            if c < 0:
                continue
            pool = [m for layer in pools for m in by_domain_layer[(c, layer)] if m.enabled]
            if not pool:
                continue
            # recent models are a bit likelier: real DAGs grow from their newest parts
            p = pool[min(len(pool) - 1, int(len(pool) * (1 - rng.random() ** 1.5)))]
            if p not in parents:
                parents.append(p)
        return parents

    n_refs_weights = [0.35, 0.35, 0.20, 0.10]

    # ---- intermediate and marts, interleaving domains so each layer grows "over time"
    for layer, lower, same_share in (("intermediate", ["staging"], 0.20),
                                     ("marts", ["intermediate", "staging"], 0.15)):
        queue = [d.k for d in domains for _ in range(per_domain[layer][d.k])]
        rng.shuffle(queue)
        for k in queue:
            n_refs = rng.choices([1, 2, 3, 4], n_refs_weights)[0]
            parents = pick_parents(k, lower, layer, n_refs, same_share)
            if not parents:   # a domain without lower models: read core's / any lower domain's
                parents = pick_parents(0, lower, layer, 1, 0.0) or [models[0]]
            p1 = parents[0]
            area = domains[k].area
            if layer == "intermediate":
                entity = p1.entity
                name = unique_name(f"int_{area}__{entity}_{rng.choice(INT_VERBS)}")
                extra = [(x[0], f"Derived: {x[1]}.") for x in rng.sample(METRICS, 1 if rng.random() < 0.3 else 0)]
                m = Model(len(models), name, layer, k, entity, p1.id_col,
                          model_columns(p1.id_col, parents[1:], rng.randint(3, 8), extra), refs=[p.name for p in parents])
                m.description = f"{entity.replace('_', ' ').capitalize()} {name.rsplit('_', 1)[-1] if not name[-1].isdigit() else 'transformed'} with {', '.join(p.name for p in parents[1:]) or 'its history'}."
                if rng.random() < 1 / 6:
                    m.materialized = "ephemeral"
            else:
                kind = rng.choices([k_ for k_, _ in MART_KINDS], [w for _, w in MART_KINDS])[0]
                entity = p1.entity
                if kind == "agg":
                    grain = rng.choice(AGG_GRAINS)
                    name = unique_name(f"agg_{area}__{_plural(entity)}_{grain}")
                    id_col = f"{entity}_{grain}_key"
                else:
                    name = unique_name(f"{kind}_{area}__{_plural(entity) if kind == 'fct' else entity}")
                    id_col = f"{entity}_id" if kind == "dim" else f"{entity}_key" if rng.random() < 0.3 else f"{entity}_id"
                extra = [(mname, f"{mexpr} over the grain.") for mname, mexpr in rng.sample(METRICS, rng.randint(0, 3))]
                m = Model(len(models), name, layer, k, entity, id_col,
                          model_columns(id_col, parents, rng.randint(3, 10), extra), refs=[p.name for p in parents],
                          materialized="table", mart_kind=kind)
                what = {"fct": "Fact table", "dim": "Dimension", "agg": "Aggregate"}[kind]
                m.description = (f"{what} of {_plural(entity).replace('_', ' ')} for the {area.replace('_', ' ')} domain. "
                                 f"Built from {', '.join(p.name for p in parents)}.")
                if kind == "fct" and rng.random() < 0.25:
                    m.materialized, m.incremental = "incremental", True
            if m.materialized == "view" and layer == "marts":
                m.materialized = "table"
            models.append(m)
            by_domain_layer[(k, layer)].append(m)

    enabled = list(models)
    # ---- informational tags, second domain tags, aliases
    for m in enabled:
        r = rng.random()
        if m.layer == "staging" and any(c[0] in ("email", "owner_email") for c in m.columns) and r < 0.8:
            m.extra_tags.append("pii")
        if m.layer == "marts":
            if r < 0.10:
                m.extra_tags.append("hourly")
            elif r < 0.16:
                m.extra_tags.append("sla_critical")
            elif r < 0.19:
                m.extra_tags.append("finance_close")
        if m.layer == "intermediate" and r < 0.04:
            m.extra_tags.append("experimental")
    eligible = [m for m in enabled if m.domain > 0]
    n_two = round(len(enabled) * 0.03)
    for m in rng.sample(eligible, min(n_two, len(eligible))):
        # a second orchestration tag, of a lower domain (often core), set on the model itself
        j = 0 if rng.random() < 0.5 else rng.randrange(0, m.domain)
        m.extra_tags.insert(rng.randrange(0, len(m.extra_tags) + 1), f"domain_{j}")
    relations = {(LAYER_SCHEMA[m.layer], m.name) for m in enabled}
    non_eph = [m for m in enabled if m.materialized != "ephemeral"]
    for m in rng.sample(non_eph, max(1, round(len(enabled) * 0.02)) if len(non_eph) > 10 else 0):
        base = m.name.split("__", 1)[-1] if "__" in m.name else m.name
        alias = f"{domains[m.domain].area}_{base}" if not base.startswith(domains[m.domain].area) else f"{base}_v2"
        if (LAYER_SCHEMA[m.layer], alias) not in relations:
            relations.add((LAYER_SCHEMA[m.layer], alias))
            m.alias = alias

    # ---- tests (~2.6 per model)
    by_name = {m.name: m for m in models}
    for m in non_eph:
        m.tests = [("unique", m.id_col, {}), ("not_null", m.id_col, {})]
        colnames = [c[0] for c in m.columns]
        fks = [by_name[r] for r in m.refs if by_name[r].id_col in colnames[1:]
               and by_name[r].materialized != "ephemeral"]
        if fks and rng.random() < 0.45:
            p = rng.choice(fks)
            m.tests.append(("not_null", p.id_col, {}))
            m.tests.append(("relationships", p.id_col, {"to": f"ref('{p.name}')", "field": p.id_col}))
        elif rng.random() < 0.15 and len(colnames) > 2:
            m.tests.append(("not_null", colnames[2], {}))
        if "status" in colnames and rng.random() < 0.3:
            m.tests.append(("accepted_values", "status", {"values": STATUS_VALUES}))
    for s in systems:
        for t in s.tables:
            if rng.random() < 0.2:
                t.tests = [("unique", "id"), ("not_null", "id")] if rng.random() < 0.5 else [("not_null", "id")]

    # ---- a few disabled marts (nothing refs them)
    n_disabled = len(enabled) // 200
    for i in range(n_disabled):
        p = rng.choice([m for m in enabled if m.layer != "marts"] or enabled)
        k = p.domain
        name = unique_name(f"fct_{domains[k].area}__{_plural(p.entity)}_legacy")
        m = Model(len(models), name, "marts", k, p.entity, p.id_col, [], refs=[p.name], materialized="table",
                  enabled=False, mart_kind="fct")
        m.description = "Deprecated, kept disabled until the dashboards moved to the new fact table."
        models.append(m)

    # ---- one exposure (dashboard) per domain with marts
    exposures = []
    for d in domains:
        marts = [m for m in by_domain_layer[(d.k, "marts")] if m.enabled and m.materialized != "ephemeral"]
        if marts:
            refs = [m.name for m in rng.sample(marts, min(len(marts), rng.randint(1, 4)))]
            exposures.append(Exposure(f"{d.area}_dashboard", d.k, refs, f"{d.area.replace('_', ' ').title()} dashboard",
                                      f"https://bi.example.com/dashboards/{d.area}"))
    return Plan(n_models, n_tags, seed, domains, systems, models, exposures)


# --------------------------------------------------------------------------- project files

def _q(text: str) -> str:
    """A YAML scalar: JSON's double-quoted strings are valid YAML."""
    return json.dumps(text)


def _cast(col: str) -> str:
    if col.endswith(("_id", "_key")) or col in ("quantity", "version", "duration_seconds"):
        return "bigint"
    if col.endswith("_at") or col in ("valid_from", "valid_to"):
        return "timestamp"
    if col.startswith("is_"):
        return "boolean"
    if "amount" in col or "price" in col or col == "score":
        return "decimal(18, 2)"
    return "varchar"


def _config_call(m: Model) -> str:
    args = []
    if m.layer != "staging" and m.materialized != LAYER_MATERIALIZED[m.layer]:
        args.append(f"materialized='{m.materialized}'")
    if m.incremental:
        args.append(f"unique_key='{m.id_col}'")
        args.append("on_schema_change='append_new_columns'")
    if m.alias:
        args.append(f"alias='{m.alias}'")
    if m.extra_tags:
        args.append("tags=[" + ", ".join(f"'{t}'" for t in m.extra_tags) + "]")
    if not m.enabled:
        args.append("enabled=false")
    return "{{ config(" + ", ".join(args) + ") }}\n\n" if args else ""


def render_sql(m: Model, by_name: dict) -> str:
    head = _config_call(m) + "".join(f"-- {line}\n" for line in _wrap(m.description, 90))
    if m.layer == "staging":
        if len(m.sources) == 1:
            t = m.sources[0]
            src = f"    select * from {{{{ source('{t.system}', '{t.name}') }}}}\n"
        else:
            src = "\n    union all by name\n\n".join(
                f"    select *, '{t.name}' as _source_table from {{{{ source('{t.system}', '{t.name}') }}}}\n"
                for t in m.sources)
        lines = [f"        cast(id as bigint) as {m.id_col}"]
        lines += [f"        cast({c} as {_cast(c)}) as {c}" for c, _ in m.columns[1:]]
        return (head + "with source as (\n" + src + "),\n\n"
                "renamed as (\n    select\n" + ",\n".join(lines) + "\n    from source\n),\n\n"
                "deduplicated as (\n    select\n        *,\n"
                f"        row_number() over (partition by {m.id_col} order by updated_at desc) as _version_rank\n"
                "    from renamed\n)\n\n"
                f"select * exclude (_version_rank)\nfrom deduplicated\nwhere _version_rank = 1\n")
    parents = [by_name[r] for r in m.refs]
    ctes = [f"{p.entity}_{i}" if i else p.entity for i, p in enumerate(parents)]
    parts = [f"{c} as (\n    select * from {{{{ ref('{p.name}') }}}}\n)" for c, p in zip(ctes, parents)]
    first, p1 = ctes[0], parents[0]
    select = [f"        {first}.{p1.id_col} as {m.id_col}"]
    aggregate = m.mart_kind == "agg"
    for c, _ in m.columns[1:]:
        expr = dict(METRICS).get(c)
        if expr:
            select.append(f"        {expr} as {c}")
            aggregate = True
            continue
        owner = next((cte for cte, p in zip(ctes, parents) if any(pc[0] == c for pc in p.columns)), first)
        select.append(f"        {owner}.{c}")
    joins = "".join(
        f"    left join {cte} on {cte}.{p.id_col} = {first}.{p.id_col}\n" for cte, p in zip(ctes[1:], parents[1:]))
    group = f"    group by all\n" if aggregate else ""
    incremental = ("\n{% if is_incremental() %}\n"
                   "where updated_at > (select max(updated_at) from {{ this }})\n"
                   "{% endif %}\n") if m.incremental else ""
    return (head + "with " + ",\n\n".join(parts) + ",\n\n"
            "final as (\n    select\n" + ",\n".join(select) + f"\n    from {first}\n" + joins + group + ")\n\n"
            "select * from final" + incremental + "\n")


def _wrap(text: str, width: int) -> list:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return lines + ([line] if line else [])


def _test_yaml(name: str, kwargs: dict, indent: str) -> str:
    if not kwargs:
        return f"{indent}- {name}\n"
    out = f"{indent}- {name}:\n{indent}    arguments:\n"
    for k, v in kwargs.items():
        out += f"{indent}      {k}: {json.dumps(v)}\n"
    return out


def render_models_yml(models: list) -> str:
    out = ["version: 2\n\nmodels:\n"]
    for m in models:
        if not m.enabled:
            continue
        out.append(f"  - name: {m.name}\n    description: {_q(m.description)}\n    columns:\n")
        for col, desc in m.columns:
            out.append(f"      - name: {col}\n        description: {_q(desc)}\n")
            tests = [(t, kw) for t, c, kw in m.tests if c == col]
            if tests:
                out.append("        data_tests:\n")
                out.extend(_test_yaml(t, kw, "          ") for t, kw in tests)
        out.append("\n")
    return "".join(out)


def render_sources_yml(systems: list) -> str:
    out = ["version: 2\n\nsources:\n"]
    for s in systems:
        out.append(f"  - name: {s.name}\n    schema: raw_{s.name}\n    description: {_q(s.description)}\n"
                   f"    loader: meltano\n")
        if s.freshness:
            out.append("    config:\n      loaded_at_field: _sdc_batched_at\n      freshness:\n"
                       "        warn_after: {count: 12, period: hour}\n        error_after: {count: 36, period: hour}\n")
        out.append("    tables:\n")
        for t in s.tables:
            out.append(f"      - name: {t.name}\n        columns:\n")
            for col, desc in t.columns:
                out.append(f"          - name: {col}\n            description: {_q(desc)}\n")
                tests = [name for name, c in t.tests if c == col]
                if tests:
                    out.append("            data_tests: [" + ", ".join(tests) + "]\n")
    return "".join(out)


def render_exposures_yml(exposures: list, domains: list) -> str:
    out = ["version: 2\n\nexposures:\n"]
    for e in exposures:
        d = domains[e.domain]
        out.append(f"  - name: {e.name}\n    label: {_q(e.label)}\n    type: dashboard\n    maturity: high\n"
                   f"    url: {e.url}\n    description: {_q(f'The {d.area} team dashboard.')}\n    depends_on:\n")
        out.extend(f"      - ref('{r}')\n" for r in e.refs)
        out.append(f"    owner:\n      name: {_q(d.area.replace('_', ' ').title() + ' data team')}\n"
                   f"      email: {d.owner}\n\n")
    return "".join(out)


def marts_schedule_tag(d: Domain) -> str:
    return "hourly" if d.k % 5 == 3 else "daily"


def render_dbt_project(plan: Plan) -> str:
    out = [f"""# Generated by bench/gen_dbt_project.py --models {plan.n_models} --tags {plan.n_tags} --seed {plan.seed}
name: {PROJECT}
version: "1.0.0"
config-version: 2
profile: {PROJECT}

model-paths: ["models"]
macro-paths: ["macros"]
target-path: target
clean-targets: [target, logs]

flags:
  send_anonymous_usage_stats: false

# One orchestration tag per domain folder (domain_<k>), with its owner.
models:
  {PROJECT}:
"""]
    for layer in LAYER_SCHEMA:
        out.append(f"    {layer}:\n      +schema: {LAYER_SCHEMA[layer]}\n      +materialized: {LAYER_MATERIALIZED[layer]}\n")
        for d in plan.domains:
            tags = [d.tag] + ([marts_schedule_tag(d)] if layer == "marts" else [])
            out.append(f"      {d.tag}:\n        +tags: [{', '.join(tags)}]\n        +meta: {{owner: {d.owner}}}\n")
    return "".join(out)


def render_selectors(plan: Plan) -> str:
    out = ["selectors:\n"]
    for d in plan.domains:
        out.append(f"  - name: {d.tag}\n    description: {_q(f'The {d.area} domain.')}\n    definition:\n"
                   f"      method: tag\n      value: {d.tag}\n      indirect_selection: buildable\n")
    return "".join(out)


GENERATE_SCHEMA_NAME = """{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
"""


def project_files(plan: Plan) -> dict:
    """{relative path: text} of the whole project (not profiles.yml)."""
    files = {"dbt_project.yml": render_dbt_project(plan), "selectors.yml": render_selectors(plan),
             "macros/generate_schema_name.sql": GENERATE_SCHEMA_NAME}
    by_name = plan.by_name()
    for m in plan.models:
        files[f"models/{m.folder}/{m.name}.sql"] = render_sql(m, by_name)
    for d in plan.domains:
        systems = [s for s in plan.systems if s.domain == d.k]
        if systems:
            files[f"models/staging/{d.tag}/_{d.tag}__sources.yml"] = render_sources_yml(systems)
        for layer in LAYER_SCHEMA:
            models = [m for m in plan.models if m.domain == d.k and m.layer == layer and m.enabled]
            if models:
                files[f"models/{layer}/{d.tag}/_{d.tag}__{layer}.yml"] = render_models_yml(models)
        exposures = [e for e in plan.exposures if e.domain == d.k]
        if exposures:
            files[f"models/marts/{d.tag}/_{d.tag}__exposures.yml"] = render_exposures_yml(exposures, plan.domains)
    return files


def render_profiles(out: Path) -> str:
    return f"""{PROJECT}:
  target: duckdb
  outputs:
    duckdb:
      type: duckdb
      path: {_q(str(out.resolve() / (DATABASE + '.duckdb')))}
      schema: {TARGET_SCHEMA}
      threads: 8
"""


def write_project(plan: Plan, out: Path) -> dict:
    files = project_files(plan)
    if (out / "models").exists():
        shutil.rmtree(out / "models")
    for rel, text in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    (out / "profiles.yml").write_text(render_profiles(out), encoding="utf-8")
    return files
