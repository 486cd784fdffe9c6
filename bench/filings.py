"""Filings benchmark: CTR aggregation over N cash transactions, and a batch's XML + validation.

    python -m bench.filings [--rows 1000000] [--batch 10000]

1. N cash transactions (5 business days, N/20 persons so a good share of person-days is over
   USD 10,000, a tenth on behalf of another person, a twentieth in EUR) are generated in SQL.
   Timed: ``filings.services.ctr_prepare`` over the 5 days (the set-based aggregation, exempt
   persons, filings, lineage and subjects, in one transaction), against the floor measured in the
   same run: a bare ``GROUP BY person, day, direction HAVING sum > 10000`` over the same rows
   (conducting person only, no FX, no writes), median of 3 after a warm-up.
2. ``--batch`` of the prepared filings: the batch XML generated from the database
   (``services.batch_xml``) and validated (XSD 1.1 + the rule catalog). Timed separately, with
   the process's peak RSS before and after.

Runs in a throwaway database next to DATABASE_URL's (created and dropped here; BENCH_DATABASE_NAME
reuses one). Prints figures; asserts only that the work was done (counts), never timings.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FIRST, LAST = date(2026, 11, 16), date(2026, 11, 20)
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

# Deterministic pseudo-random data from the row number (hashtext), so every run is the same.
GENERATE = """
INSERT INTO filings_cashtransaction (tenant_id, external_id, version, is_current, business_date, occurred_at,
    branch_code, direction, amount, currency, account, conducted_by, on_behalf_of, detail_code, batch_id)
SELECT %(tenant)s, 'T' || i, 1, TRUE, %(first)s::date + (i %% 5), NULL,
       CASE WHEN i %% 3 = 0 THEN 'EAST' ELSE 'MAIN' END,
       CASE WHEN h %% 2 = 0 THEN 'in' ELSE 'out' END,
       100 + abs(h %% 790000) / 100.0,
       CASE WHEN i %% 20 = 0 THEN 'EUR' ELSE 'USD' END,
       'ACC-' || (i %% %(persons)s),
       'P' || (abs(hashtext(i::text || 'p')) %% %(persons)s),
       CASE WHEN i %% 10 = 0 THEN 'P' || (abs(hashtext(i::text || 'b')) %% %(persons)s) ELSE '' END,
       CASE WHEN h %% 2 = 0 THEN '55' ELSE '56' END,
       %(batch)s
FROM (SELECT i, hashtext(i::text) AS h FROM generate_series(1, %(rows)s) AS i) g
"""
PARTIES = """
INSERT INTO filings_partyversion (tenant_id, party_key, version, is_current, is_entity, last_name, first_name,
    middle_name, tin, tin_type, birth_date, street, city, state, zip_code, country, id_type, id_number,
    id_issuer_state, id_issuer_country, occupation, batch_id, valid_from)
SELECT %(tenant)s, 'P' || i, 1, TRUE, FALSE, 'Person' || i, 'Pat', '', lpad(i::text, 9, '0'), '1',
       DATE '1970-01-01' + (i %% 15000), i || ' Main Street', 'Springfield', 'IL', '62701', 'US', '5',
       'D' || i, 'IL', '', 'Clerk', %(batch)s, now()
FROM generate_series(0, %(persons)s - 1) AS i
"""
FLOOR = """
SELECT count(*) FROM (
    SELECT conducted_by, business_date, direction
    FROM filings_cashtransaction
    WHERE tenant_id = %(tenant)s AND is_current AND business_date BETWEEN %(first)s AND %(last)s
    GROUP BY conducted_by, business_date, direction
    HAVING sum(amount) > 10000
) s
"""


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def setup(rows: int):
    from filings.config import config_upsert
    from filings.models import Branch, FilingInstitution, FxRate
    from jfintech.audit import Actor
    from jfintech.tenancy.models import Role, Tenant

    actor = Actor.for_system("bench")
    tenant = Tenant.objects.create(slug="bench-filings", name="Bench filings")
    inst = {
        "name": "Bench Bank",
        "ein": "123456789",
        "street": "1 Main Street",
        "city": "Springfield",
        "state": "IL",
        "zip_code": "62701",
        "contact_office": "BSA Office",
        "contact_phone": "2175550100",
        "transmitter_name": "Bench Bank",
        "transmitter_tin": "123456789",
        "transmitter_tcc": "PBENCH01",
        "transmitter_phone": "2175550100",
        "transmitter_contact": "Jane Compliance",
    }
    config_upsert(
        tenant=tenant, actor=actor, model=FilingInstitution, key={}, values=inst, check_permission=False
    )
    for code in ("MAIN", "EAST"):
        config_upsert(
            tenant=tenant,
            actor=actor,
            model=Branch,
            key={"code": code},
            check_permission=False,
            values={
                "name": f"{code} branch",
                "ein": "123456789",
                "street": "1 Main Street",
                "city": "Springfield",
                "state": "IL",
                "zip_code": "62701",
            },
        )
    for i in range(5):
        config_upsert(
            tenant=tenant,
            actor=actor,
            model=FxRate,
            check_permission=False,
            key={"currency": "EUR", "business_date": date.fromordinal(FIRST.toordinal() + i)},
            values={"usd_per_unit": "1.0850", "source": "bench ECB reference"},
        )
    from reconciliation.ingestion.services import source_upsert
    from reconciliation.models import IngestionBatch

    # The rows are COPYed straight in (ingestion's path is not what is measured): one loaded batch
    # of the tenant's cash_transactions source stands for them (and for the parties).
    source, _ = source_upsert(
        tenant=tenant, actor=actor, name="bench-cash", kind="cash_transactions", format="json"
    )
    batch = IngestionBatch.objects.create(
        tenant=tenant,
        source=source,
        sha256="0" * 64,
        status="loaded",
        rows_total=rows,
        rows_accepted=rows,
        created_by="bench",
    )
    from django.contrib.auth import get_user_model

    from jfintech.tenancy.models import Membership

    user = get_user_model().objects.create(username="bench-analyst")
    Membership.objects.create(user=user, tenant=tenant, role=Role.ANALYST)
    return tenant, batch, Actor.for_user(user)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    os.environ["LOG_LEVEL"] = "WARNING"
    import django

    django.setup()
    from django.db import connection, connections
    from django.test.utils import setup_databases, teardown_databases

    name = os.environ.get("BENCH_DATABASE_NAME") or f"bench_filings_{connection.settings_dict['NAME']}"
    connection.settings_dict.setdefault("TEST", {})["NAME"] = name
    keep = bool(os.environ.get("BENCH_DATABASE_NAME"))
    databases = setup_databases(verbosity=0, interactive=False, keepdb=keep)
    try:
        results = run(args.rows, args.batch)
    finally:
        connections.close_all()
        if not keep:
            teardown_databases(databases, verbosity=0)
    report(results)
    out = Path(os.environ.get("BENCH_RESULTS", "bench/results")) / "filings.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    return 0


def run(rows: int, batch_size: int) -> dict:
    from django.db import connection, transaction
    from lxml import etree

    from filings import services
    from filings.models import Filing, FilingLineage
    from filings.validation import SCHEMAS, fatal, parse, schema, validate_batch, xsd_violations

    tenant, batch, actor = setup(rows)
    persons = max(rows // 20, 1)
    params = {
        "tenant": tenant.pk,
        "first": FIRST,
        "last": LAST,
        "rows": rows,
        "persons": persons,
        "batch": batch.pk,
    }
    with connection.cursor() as cursor:
        t0 = time.monotonic()
        cursor.execute(GENERATE, params)
        cursor.execute(PARTIES, params)
        cursor.execute("VACUUM ANALYZE filings_cashtransaction")
        cursor.execute("VACUUM ANALYZE filings_partyversion")
        generate_s = time.monotonic() - t0
        cursor.execute(FLOOR, params)  # warm-up: the rows in shared buffers for both
        floor_groups = cursor.fetchone()[0]
        floor = []
        for _ in range(3):
            t0 = time.monotonic()
            cursor.execute(FLOOR, params)
            cursor.fetchone()
            floor.append(time.monotonic() - t0)
    t0 = time.monotonic()
    prepared = services.ctr_prepare(tenant=tenant, actor=actor, first=FIRST, last=LAST, now=NOW)
    prepare_s = time.monotonic() - t0
    lineage = FilingLineage.objects.filter(tenant=tenant).count()
    assert prepared.filings > 0
    assert prepared.lineage_rows == lineage

    ids = list(Filing.objects.filter(tenant=tenant).order_by("pk").values_list("pk", flat=True)[:batch_size])
    with transaction.atomic():
        Filing.objects.filter(pk__in=ids).update(status="approved", approver="bench")
    filings = list(Filing.objects.filter(pk__in=ids).order_by("pk"))
    schema("ctr")  # loading the XSD once is not part of a batch's cost
    rss_before = peak_rss_mb()
    t0 = time.monotonic()
    xml, facts = services.batch_xml(tenant=tenant, filings=filings, filing_date=NOW.date())
    generate_xml_s = time.monotonic() - t0
    if os.environ.get("BENCH_KEEP_XML"):
        Path(os.environ["BENCH_KEEP_XML"]).write_bytes(xml)
    t0 = time.monotonic()
    violations = validate_batch(xml, facts=facts)
    validate_s = time.monotonic() - t0
    assert not fatal(violations), violations[:5]
    rss_after_validate = peak_rss_mb()
    # Where the validation time goes: the XSD alone (xmlschema, XSD 1.1 mode, pure Python) and,
    # for comparison, libxml2's C validator on the same schema (it has no 1.1-only construct).
    tree = parse(xml)
    t0 = time.monotonic()
    assert not xsd_violations(xml, tree=tree)
    xsd_s = time.monotonic() - t0
    libxml2 = etree.XMLSchema(etree.parse(str(SCHEMAS["ctr"])))
    t0 = time.monotonic()
    assert libxml2.validate(tree.getroot())
    libxml2_s = time.monotonic() - t0
    return {
        "rows": rows,
        "persons": persons,
        "generate_s": round(generate_s, 2),
        "prepare_s": round(prepare_s, 3),
        "prepare_steps_s": prepared.timings,
        "floor_s": round(statistics.median(floor), 3),
        "ratio": round(prepare_s / statistics.median(floor), 1),
        "floor_groups_over": floor_groups,
        "filings": prepared.filings,
        "lineage_rows": lineage,
        "batch": len(filings),
        "xml_bytes": len(xml),
        "xml_generate_s": round(generate_xml_s, 2),
        "xml_validate_s": round(validate_s, 2),
        "xsd_xmlschema11_s": round(xsd_s, 2),
        "xsd_libxml2_s": round(libxml2_s, 2),
        "peak_rss_mb_before_xml": round(rss_before, 1),
        "peak_rss_mb_after_xml": round(rss_after_validate, 1),
        "warnings": len(violations),
    }


def report(r: dict) -> None:
    print(f"CTR aggregation, {r['rows']:,} cash transactions, {r['persons']:,} persons, 5 days")
    print(
        f"  ctr_prepare (aggregate + filings + lineage + subjects): {r['prepare_s']:.2f} s"
        f" -> {r['filings']:,} filings, {r['lineage_rows']:,} lineage rows"
    )
    print(
        f"  floor: bare GROUP BY person, day, direction HAVING > 10000: {r['floor_s']:.2f} s"
        f" (median of 3); ratio {r['ratio']}x"
    )
    print(f"XML batch of {r['batch']:,} filings ({r['xml_bytes'] / 1e6:.1f} MB)")
    print(f"  generate {r['xml_generate_s']:.2f} s, validate (XSD 1.1 + catalog) {r['xml_validate_s']:.2f} s")
    print(
        f"  of which the XSD: xmlschema XMLSchema11 {r['xsd_xmlschema11_s']:.2f} s"
        f" (libxml2 on the same schema, for comparison: {r['xsd_libxml2_s']:.2f} s)"
    )
    print(
        f"  peak RSS {r['peak_rss_mb_before_xml']:.0f} MB before, {r['peak_rss_mb_after_xml']:.0f} MB after"
    )


if __name__ == "__main__":
    sys.exit(main())
