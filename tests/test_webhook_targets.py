"""Where webhooks may post: public addresses only unless PORTAL_WEBHOOKS_ALLOW_PRIVATE
is on, checked when the webhook is saved and again when each event is posted, which
connects to the very address that was checked."""

# ruff: noqa: F811 (the receivers' fixtures are imported from tests.receivers)

import datetime
import socket
import ssl
import threading
from http.server import ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.urls import reverse

from environments.models import OperationKind, Webhook, WebhookAttempt, WebhookDelivery
from environments.notify import webhooks
from tests.receivers import Receiver, webhook_receiver  # noqa: F401

pytestmark = pytest.mark.django_db

PUBLIC = "93.184.216.34"


@pytest.fixture
def private_refused(settings):
    settings.PORTAL_WEBHOOKS_ALLOW_PRIVATE = False


def resolving(monkeypatch, *answers):
    """Make every name resolve to the next of ``answers`` (the last one from then on);
    returns the names asked, in order."""
    asked, answers = [], list(answers)

    def getaddrinfo(host, port, *args, **kwargs):
        asked.append(host)
        address = answers.pop(0) if len(answers) > 1 else answers[0]
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


def add_webhook(admin_client, project, url):
    return admin_client.post(
        reverse("admin:environments_webhook_add"),
        {"project": project.pk, "name": "Ops", "url": url, "secret": "s3cret", "active": "on"},
    )


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "169.254.169.254",  # the cloud metadata service
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.10",
        "100.64.0.1",  # shared address space (carrier-grade NAT)
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1%eth0",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:169.254.169.254",
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    ],
)
def test_loopback_link_local_private_and_reserved_addresses_are_refused(address):
    assert webhooks._refusal(address)


@pytest.mark.parametrize("address", [PUBLIC, "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(address):
    assert webhooks._refusal(address) == ""


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://169.254.169.254/latest/meta-data/",
        "https://10.0.0.5/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://localhost/hook",
    ],
)
def test_the_admin_refuses_a_webhook_to_a_private_address(
    admin_client, project, private_refused, url
):
    page = add_webhook(admin_client, project, url)
    assert page.status_code == 200
    assert "webhooks go to public addresses only" in page.content.decode()
    assert not Webhook.objects.exists()


def test_the_admin_refuses_a_name_that_resolves_to_loopback(
    admin_client, project, private_refused, monkeypatch
):
    resolving(monkeypatch, "127.0.0.1")
    page = add_webhook(admin_client, project, "https://hooks.example.com/services/T1/B2/x")
    text = page.content.decode()
    assert "hooks.example.com resolves to 127.0.0.1, a loopback address" in text
    assert "PORTAL_WEBHOOKS_ALLOW_PRIVATE=1" in text
    assert not Webhook.objects.exists()


def test_the_admin_refuses_a_name_that_does_not_resolve(admin_client, project):
    page = add_webhook(admin_client, project, "https://no-such-host.invalid/hook")
    assert "Cannot resolve no-such-host.invalid" in page.content.decode()
    assert not Webhook.objects.exists()


def test_the_admin_saves_a_public_receiver(admin_client, project, private_refused, monkeypatch):
    resolving(monkeypatch, PUBLIC)
    page = add_webhook(admin_client, project, "https://hooks.example.com/services/T1/B2/x")
    assert page.status_code == 302
    assert Webhook.objects.get().url == "https://hooks.example.com/services/T1/B2/x"


def test_with_the_setting_on_the_admin_saves_a_local_receiver(admin_client, project):
    page = add_webhook(admin_client, project, "http://127.0.0.1:9000/hook")
    assert page.status_code == 302
    assert Webhook.objects.get().url == "http://127.0.0.1:9000/hook"


def test_a_delivery_to_a_private_address_is_refused_without_connecting(
    webhook_receiver, project, environment, manager, start, settings
):
    # Saved while the setting was on; it is off when the event is posted.
    receiver = webhook_receiver()
    Webhook.objects.create(project=project, name="Ops", url=receiver.url, secret=receiver.secret)
    start(OperationKind.ENABLE_MAINTENANCE, environment, manager)
    settings.PORTAL_WEBHOOKS_ALLOW_PRIVATE = False

    webhooks.deliver(WebhookDelivery.objects.get().pk)

    attempt = WebhookAttempt.objects.get()
    assert attempt.status_code is None
    assert attempt.error == (
        "Refused: 127.0.0.1 is a loopback address: webhooks go to "
        "public addresses only (PORTAL_WEBHOOKS_ALLOW_PRIVATE=1 allows local and private "
        "networks)."
    )
    assert receiver.received == []


def test_the_delivery_connects_to_the_address_it_checked_not_a_later_answer(
    project, environment, manager, start, private_refused, monkeypatch
):
    """DNS rebinding: the name answers a public address when checked and 127.0.0.1 a
    moment later; the connection goes to the first answer and the name is not asked
    again."""
    Webhook.objects.create(
        project=project, name="Ops", url="https://hooks.example.com/services/x", secret="s"
    )
    start(OperationKind.ENABLE_MAINTENANCE, environment, manager)
    asked = resolving(monkeypatch, PUBLIC, "127.0.0.1")
    connected = []

    def create_connection(address, *args, **kwargs):
        connected.append(address)
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(socket, "create_connection", create_connection)

    webhooks.deliver(WebhookDelivery.objects.get().pk)

    assert asked == ["hooks.example.com"]
    assert connected == [(PUBLIC, 443)]
    assert WebhookAttempt.objects.get().error == (
        "ConnectionRefusedError: [Errno 111] Connection refused"
    )


def test_the_receiver_gets_the_urls_host_though_the_portal_connects_to_its_address(
    webhook_receiver, project, environment, manager, start, monkeypatch
):
    receiver = webhook_receiver()
    port = receiver.url.split(":")[2].split("/")[0]
    Webhook.objects.create(
        project=project,
        name="Ops",
        url=f"http://hooks.example.test:{port}/hook?team=ops",
        secret=receiver.secret,
    )
    start(OperationKind.ENABLE_MAINTENANCE, environment, manager)
    resolving(monkeypatch, "127.0.0.1")

    webhooks.deliver(WebhookDelivery.objects.get().pk)

    assert WebhookAttempt.objects.get().status_code == 200
    [delivery] = receiver.received
    assert delivery.headers["Host"] == f"hooks.example.test:{port}"
    assert delivery.signature_ok


def certificate_for(name, tmp_path):
    """A self-signed certificate for ``name``: (certificate file, key file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture
def tls_receiver(tmp_path, monkeypatch):
    """A webhook receiver over TLS on 127.0.0.1 whose certificate names
    hooks.example.test, which the portal trusts and resolves to 127.0.0.1."""
    cert_file, key_file = certificate_for("hooks.example.test", tmp_path)
    receiver = Receiver("s3cret")
    server = ThreadingHTTPServer(("127.0.0.1", 0), receiver.handler())
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert_file, key_file)
    server.socket = server_tls.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(
        webhooks.PinnedHTTPSConnection, "tls", ssl.create_default_context(cafile=cert_file)
    )
    resolving(monkeypatch, "127.0.0.1")
    receiver.port = server.server_address[1]
    yield receiver
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    "name, delivered",
    [("hooks.example.test", True), ("other.example.test", False)],
)
def test_over_https_the_certificate_must_name_the_urls_host(
    tls_receiver, project, environment, manager, start, name, delivered
):
    Webhook.objects.create(
        project=project,
        name="Ops",
        url=f"https://{name}:{tls_receiver.port}/hook",
        secret=tls_receiver.secret,
    )
    start(OperationKind.ENABLE_MAINTENANCE, environment, manager)

    webhooks.deliver(WebhookDelivery.objects.get().pk)

    attempt = WebhookAttempt.objects.get()
    if delivered:
        assert attempt.status_code == 200
        assert tls_receiver.received[0].headers["Host"] == f"{name}:{tls_receiver.port}"
    else:
        assert attempt.status_code is None
        assert "certificate verify failed" in attempt.error
        assert "other.example.test" in attempt.error
        assert tls_receiver.received == []
