"""Billing exports checked with the tools finance teams use, on a generated period.

- FOCUS 1.0 CSV passes the FinOps Foundation's focus-validator 1.0.0 with zero failed rules,
  skipping exactly the 13 rules in which its "1.0" rule set still uses pre-1.0 names (see README).
- Parquet, CSV and JSON lines load unchanged in pyarrow and in DuckDB: the row count, the decimal
  types, and the sum of costs equal to the statement totals exactly (as decimals, never floats).
- A tag value holding a comma, a quote and a newline survives DuckDB's read_csv.

The files come from `cargo run -p tally-export --example sample_export -- DIR`, or from
EXPORT_DIR when set (a folder with the same files and expected.json).
Run: python3 -m unittest tests/python/check_exports.py
Needs: pip install focus-validator==1.0.0 'multimethod<1.12' 'pyarrow<21' duckdb
"""

import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import unittest
from decimal import Decimal

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PERIOD = "2026-11"
AWKWARD_TAG = 'cost center, "R&D"\nsecond line'

# focus-validator 1.0.0's "1.0" rules name four columns as before FOCUS 1.0 (InvoiceIssuer,
# Provider, Publisher, ResourceID), and SkuPriceId_Nullable reads ChargeType, which 1.0 removed.
# We emit the published 1.0 names (InvoiceIssuerName, ProviderName, PublisherName, ResourceId)
# and skip exactly these rules; every other rule must pass.
SKIPPED_RULES = [
    "InvoiceIssuer_Required", "InvoiceIssuer_IsString", "InvoiceIssuer_NotNull",
    "Provider_Required", "Provider_IsString", "Provider_NotNull",
    "Publisher_Required", "Publisher_IsString", "Publisher_NotNull",
    "ResourceID_Required", "ResourceID_IsString", "ResourceID_Nullable",
    "SkuPriceId_Nullable",
]

QUANTITY = pa.decimal128(38, 10)
AMOUNT = pa.decimal128(38, 20)
DECIMAL_COLUMNS = {"ConsumedQuantity": QUANTITY, "ListUnitPrice": AMOUNT, "BilledCost": AMOUNT}


def setUpModule():
    global FOLDER, EXPECTED, _scratch
    FOLDER = os.environ.get("EXPORT_DIR")
    if not FOLDER:
        _scratch = tempfile.TemporaryDirectory()
        FOLDER = _scratch.name
        subprocess.run(
            ["cargo", "run", "-q", "-p", "tally-export", "--example", "sample_export", "--", FOLDER],
            cwd=ROOT, check=True, timeout=900,
        )
    with open(os.path.join(FOLDER, "expected.json")) as file:
        EXPECTED = json.load(file)


def path(name):
    return os.path.abspath(os.path.join(FOLDER, name))


def expected_total():
    total = Decimal(EXPECTED["total"])
    assert total == sum(Decimal(t) for t in EXPECTED["statement_totals"].values())
    return total


class FocusValidator(unittest.TestCase):
    def test_focus_export_passes_focus_validator_1_0(self):
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as overrides:
            overrides.write("overrides:\n" + "".join(f"  - {rule}\n" for rule in SKIPPED_RULES))
        site_packages = sysconfig.get_paths()["purelib"]
        validator = os.path.join(sysconfig.get_path("scripts"), "focus-validator")
        # It reads focus_validator/utils/currency_codes.csv relative to the working directory,
        # and exits 0 even when rules fail: the verdict is its last line.
        result = subprocess.run(
            [validator, "--data-file", path(f"tally-focus-{PERIOD}.csv"), "--validate-version", "1.0",
             "--override-file", overrides.name],
            cwd=site_packages, capture_output=True, text=True, timeout=600,
        )
        os.unlink(overrides.name)
        output = result.stdout + result.stderr
        self.assertEqual(result.returncode, 0, output)
        self.assertNotIn("failed:", output)
        self.assertIn("Validation succeeded.", output.strip().splitlines()[-1], output)


class PyArrow(unittest.TestCase):
    def check(self, table):
        self.assertEqual(table.num_rows, EXPECTED["rows"])
        for name, kind in DECIMAL_COLUMNS.items():
            self.assertEqual(table.schema.field(name).type, kind, name)
        costs = table.column("BilledCost").to_pylist()
        self.assertTrue(all(isinstance(c, Decimal) for c in costs))
        self.assertEqual(sum(costs, Decimal(0)), expected_total())

    def test_parquet(self):
        table = pq.read_table(path(f"tally-charges-{PERIOD}.parquet"))
        self.assertEqual(table.schema.field("ChargePeriodStart").type, pa.timestamp("us", tz="UTC"))
        self.check(table)

    def test_csv(self):
        table = pacsv.read_csv(
            path(f"tally-charges-{PERIOD}.csv"),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(column_types=DECIMAL_COLUMNS),
        )
        self.check(table)
        descriptions = table.column("ChargeDescription").to_pylist()
        self.assertIn('Goodwill, "outage"\nof tenant 1', descriptions)

    def test_json_lines(self):
        table = pajson.read_json(path(f"tally-charges-{PERIOD}.jsonl"))
        # Decimals travel as strings (a JSON number is a binary float to most readers).
        for name, kind in DECIMAL_COLUMNS.items():
            table = table.set_column(table.schema.get_field_index(name), name, table.column(name).cast(kind))
        self.check(table)


class DuckDB(unittest.TestCase):
    def setUp(self):
        self.db = duckdb.connect()

    def check(self, relation):
        count, cost_type, quantity_type, total = self.db.execute(
            f"SELECT count(*), any_value(typeof(BilledCost)), any_value(typeof(ConsumedQuantity)),"
            f" sum(BilledCost)::VARCHAR FROM {relation}"
        ).fetchone()
        self.assertEqual(count, EXPECTED["rows"])
        self.assertEqual(cost_type, "DECIMAL(38,20)")
        self.assertEqual(quantity_type, "DECIMAL(38,10)")
        self.assertEqual(Decimal(total), expected_total())
        per_tenant = dict(self.db.execute(
            f"SELECT BillingAccountId::VARCHAR, sum(BilledCost)::VARCHAR FROM {relation} GROUP BY ALL"
        ).fetchall())
        self.assertEqual({k: Decimal(v) for k, v in per_tenant.items()},
                         {k: Decimal(v) for k, v in EXPECTED["statement_totals"].items()})

    def test_parquet(self):
        self.check(f"read_parquet('{path(f'tally-charges-{PERIOD}.parquet')}')")

    def test_csv_with_an_awkward_tag(self):
        relation = (f"read_csv('{path(f'tally-charges-{PERIOD}.csv')}', header=true,"
                    " types={'BilledCost': 'DECIMAL(38,20)', 'ConsumedQuantity': 'DECIMAL(38,10)',"
                    " 'ListUnitPrice': 'DECIMAL(38,20)'})")
        self.check(relation)
        tags = [json.loads(t) for (t,) in self.db.execute(
            f"SELECT Tags FROM {relation} WHERE Tags LIKE '%owner%'").fetchall()]
        self.assertTrue(tags)
        self.assertTrue(all(t["owner"] == AWKWARD_TAG for t in tags))
        (description,) = self.db.execute(
            f"SELECT ChargeDescription FROM {relation} WHERE x_AdjustmentId = 'adj-1'").fetchone()
        self.assertEqual(description, 'Goodwill, "outage"\nof tenant 1')

    def test_json_lines(self):
        self.check(
            "(SELECT * REPLACE (BilledCost::DECIMAL(38,20) AS BilledCost,"
            " ConsumedQuantity::DECIMAL(38,10) AS ConsumedQuantity)"
            f" FROM read_json('{path(f'tally-charges-{PERIOD}.jsonl')}', format='newline_delimited'))"
        )


if __name__ == "__main__":
    sys.exit(unittest.main())
