"""Real receivers on 127.0.0.1 for the portal's notifications: an SMTP server (aiosmtpd)
that keeps the mails it gets, and an HTTP server that checks webhook signatures and
answers as a test tells it."""

import email
import email.policy
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller

from tests.live import free_port

#: How long a held receiver waits for its test at most: far longer than any test holds
#: it, so it ends a wait only when the test itself has failed.
HOLD_GUARD_SECONDS = 120


@dataclass
class Mail:
    """One mail as the SMTP server received it."""

    sender: str
    recipients: list
    message: email.message.EmailMessage

    @property
    def subject(self):
        return self.message["Subject"]

    @property
    def text(self):
        return self.message.get_body(("plain",)).get_content()

    @property
    def html(self):
        return self.message.get_body(("html",)).get_content()


class MailBox:
    """aiosmtpd's handler: keeps every mail, in order."""

    def __init__(self):
        self.mails = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 OK"

    def to(self, address):
        return [mail for mail in list(self.mails) if address in mail.recipients]

    def wait_for(self, predicate, timeout=20):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate(list(self.mails)):
                return True
            time.sleep(0.05)
        return False


@pytest.fixture
def smtp_server(settings):
    """An SMTP server on 127.0.0.1 that the portal's mail goes to (this process's
    settings; a worker process gets the same through smtp_env)."""
    box = MailBox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = controller.port
    settings.EMAIL_USE_TLS = False
    box.port = controller.port
    box.env = {"EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": controller.port}
    yield box
    controller.stop()


@dataclass
class Delivery:
    headers: dict
    body: bytes
    signature_ok: bool

    @property
    def event(self):
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook receiver: checks each event's signature with ``secret``, answers with
    the next of ``statuses`` (then 200; a dict holds a list per event), once ``hold`` (a
    threading.Event the test sets) lets it. ``answered`` lists the events it has
    answered, in order."""

    secret: str
    statuses: list = field(default_factory=list)
    hold: threading.Event | None = None
    received: list = field(default_factory=list)
    answered: list = field(default_factory=list)

    def handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                expected = hmac.new(receiver.secret.encode(), body, hashlib.sha256).hexdigest()
                given = self.headers.get("X-Portal-Signature-256", "")
                ok = hmac.compare_digest(given, f"sha256={expected}")
                receiver.received.append(Delivery(dict(self.headers), body, ok))
                if receiver.hold is not None:
                    # Bounded only so that a failed test leaves no thread behind.
                    receiver.hold.wait(timeout=HOLD_GUARD_SECONDS)
                event = json.loads(body).get("event")
                status = receiver.next_status(event)
                if not ok:
                    status = 401
                answer = f"answer {status}".encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass  # the portal stopped waiting (its timeout)
                receiver.answered.append(event)

            def log_message(self, *args):
                pass

        return Handler

    def next_status(self, event):
        statuses = self.statuses
        if isinstance(statuses, dict):
            statuses = statuses.get(event, [])
        return statuses.pop(0) if statuses else 200

    def wait_for(self, count, timeout=20):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if len(self.received) >= count:
                return True
            time.sleep(0.05)
        return False


@pytest.fixture
def webhook_receiver():
    """Start a receiver: ``webhook_receiver(secret, statuses=[500, 500], hold=event)``;
    its ``url`` is where to send."""
    servers = []

    def start(secret="s3cret", **options):
        receiver = Receiver(secret, **options)
        server = ThreadingHTTPServer(("127.0.0.1", 0), receiver.handler())
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        servers.append(server)
        return receiver

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
