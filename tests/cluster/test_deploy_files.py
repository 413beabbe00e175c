"""The files docs/deploy.md tells an operator to install are valid as shipped: the
systemd units pass `systemd-analyze verify`, the nginx configuration `nginx -t`, the
PostgreSQL and Redis configurations their servers' own parsing, and the portal's
environment file Django's deployment checks. Only what cannot exist on a test machine
is changed first: install paths, certificate, addresses."""

import configparser
import datetime
import os
import re
import secrets
import shutil
import subprocess
import sys
import time

import pytest
from django.conf import settings

from scripts.cluster import find_nginx
from tests.live import ThrowawayPostgres, free_port

DEPLOY = settings.BASE_DIR / "deploy"
UNITS = [
    "lcs-portal.target",
    "lcs-portal-web.service",
    "lcs-portal-worker@default.service",
    "lcs-portal-watchdog.service",
]


def read_env_file(path):
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, value = line.split("=", 1)
            values[name] = value
    return values


def test_systemd_units_pass_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is missing: install Debian's systemd package")
    # Installed under /opt/lcs-portal; here the checkout and its virtualenv stand in.
    for unit in (DEPLOY / "systemd").iterdir():
        text = unit.read_text().replace("/opt/lcs-portal", str(settings.BASE_DIR))
        (tmp_path / unit.name).write_text(text)
    result = subprocess.run(
        [analyze, "verify", *(f"./{unit}" for unit in UNITS)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # It warns about unknown keys and then succeeds: any word from it is a failure.
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        result.stdout + result.stderr
    )


def test_the_units_are_hardened_and_run_as_their_own_user():
    for unit in (DEPLOY / "systemd").glob("*.service"):
        text = unit.read_text()
        for line in (
            "User=lcs-portal",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "StateDirectory=lcs-portal",
            "CapabilityBoundingSet=\n",
            "EnvironmentFile=/etc/lcs-portal/portal.env",
        ):
            assert line in text, f"{unit.name}: no {line!r}"


def self_signed_certificate(directory):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "portal.example.com")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "portal.pem", directory / "portal.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_nginx_configuration_passes_nginx_t(tmp_path):
    cert, key = self_signed_certificate(tmp_path)
    conf = (DEPLOY / "nginx" / "lcs-portal.conf").read_text()
    conf = conf.replace("/etc/ssl/certs/portal.example.com.pem", str(cert))
    conf = conf.replace("/etc/ssl/private/portal.example.com.key", str(key))
    conf = conf.replace(
        "/etc/nginx/snippets/lcs-portal-proxy.conf", str(DEPLOY / "nginx" / "lcs-portal-proxy.conf")
    )
    (tmp_path / "lcs-portal.conf").write_text(conf)
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"""
error_log {tmp_path}/error.log;
pid {tmp_path}/nginx.pid;
events {{}}
http {{
    client_body_temp_path {tmp_path}/client_body;
    proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fastcgi;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
    include {tmp_path}/lcs-portal.conf;
}}
"""
    )
    result = subprocess.run(
        [find_nginx(), "-t", "-p", str(tmp_path), "-c", str(main), "-e", str(tmp_path / "e.log")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "[warn]" not in result.stderr, result.stderr


def test_postgresql_configuration_is_accepted_by_postgres(tmp_path):
    postgres = ThrowawayPostgres()
    try:
        data = postgres.dir / "data"
        postgres.run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync")
        shutil.copy(DEPLOY / "postgresql" / "lcs-portal.conf", data / "lcs-portal.conf")
        if postgres.as_root:
            shutil.chown(data / "lcs-portal.conf", "postgres", "postgres")
        with (data / "postgresql.conf").open("a") as conf:
            conf.write("\ninclude 'lcs-portal.conf'\n")
        # postgres -C reads the configuration as the server would start with it, and
        # refuses an unknown parameter or a value out of range.
        for name, value in [("max_connections", "100"), ("wal_level", "replica")]:
            shown = postgres.run("postgres", "-D", str(data), "-C", name).stdout.strip()
            assert shown == value
    finally:
        postgres.destroy()


def test_redis_configuration_starts_redis(tmp_path):
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        pytest.fail("redis-server is missing: install Debian's redis-server package")
    port = free_port()
    conf = (DEPLOY / "redis" / "lcs-portal.conf").read_text()
    conf = re.sub(r"(?m)^bind .*$", "bind 127.0.0.1", conf)
    conf = re.sub(r"(?m)^port .*$", f"port {port}", conf)
    (tmp_path / "redis.conf").write_text(conf + f"\ndir {tmp_path}\n")
    server = subprocess.Popen(
        [redis_server, str(tmp_path / "redis.conf")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        import redis

        password = re.search(r"(?m)^requirepass (\S+)$", conf).group(1)
        client = redis.Redis(port=port, password=password)
        end = time.monotonic() + 10
        while True:
            assert server.poll() is None, server.stdout.read()
            try:
                policy = client.config_get("maxmemory-policy")
                break
            except redis.ConnectionError:
                assert time.monotonic() < end, "redis-server did not answer"
                time.sleep(0.05)
        assert policy == {"maxmemory-policy": "allkeys-lru"}
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_pgbouncer_runs_in_transaction_mode_and_the_portal_is_told():
    ini = configparser.ConfigParser()
    ini.read(DEPLOY / "pgbouncer" / "pgbouncer.ini")
    assert ini["pgbouncer"]["pool_mode"] == "transaction"
    env = read_env_file(DEPLOY / "portal.env.example")
    assert f":{ini['pgbouncer']['listen_port']}/" in env["DATABASE_URL"]
    assert env["PORTAL_PG_PREPARE"] == "0"


def test_the_environment_file_passes_djangos_deployment_checks(tmp_path):
    env = read_env_file(DEPLOY / "portal.env.example")
    # What the operator replaces, and the state directory, which must not be /var here.
    env.update(SECRET_KEY=secrets.token_urlsafe(50), PORTAL_VAR_DIR=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR,
        # Nothing of the test run's own environment (it sets DEBUG, PORTAL_TLS, ...).
        env=dict(env, PATH=os.environ["PATH"], DJANGO_SETTINGS_MODULE="lcs_portal.settings"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
