"""Enable access: firewall rules for an IP address or range, never persistent."""

import re
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from environments.models import AccessEnd, FirewallRule, Operation, OperationKind, Outcome
from tests.conftest import committing, run_worker

HTMX = {"HTTP_HX_REQUEST": "true"}


def enable(client, environment, **fields):
    data = {"name": "office", "address": "203.0.113.7", "reason": "troubleshooting"}
    data.update(fields)
    url = reverse("environment-maintain", args=[environment.slug, "enable_access"])
    with committing():
        return client.post(url, data, **HTMX)


def test_enable_access_is_in_the_maintain_menu(as_manager, environment):
    body = as_manager.get(environment.get_absolute_url()).content.decode()
    assert ">Enable access</a>" in body


def test_enable_access_form_offers_your_ip_address(as_manager, environment):
    url = reverse("environment-maintain", args=[environment.slug, "enable_access"])
    body = as_manager.get(url, REMOTE_ADDR="198.51.100.20", **HTMX).content.decode()
    assert 'value="198.51.100.20"' in body
    assert "never persistent" in body


@pytest.mark.parametrize("seen", ["127.0.0.1", "::1"])
def test_enable_access_never_offers_a_loopback_address_and_names_portal_proxy_count(
    as_manager, environment, seen
):
    url = reverse("environment-maintain", args=[environment.slug, "enable_access"])
    body = as_manager.get(url, REMOTE_ADDR=seen, **HTMX).content.decode()
    assert re.search(r'<input type="text" name="address"(?![^>]*value=)[^>]*>', body)
    assert f"The portal sees your address as {seen}" in body
    assert "PORTAL_PROXY_COUNT" in body


def test_enable_access_behind_an_unannounced_proxy_offers_no_address(
    as_manager, environment, settings
):
    settings.PORTAL_PROXY_COUNT = 0
    url = reverse("environment-maintain", args=[environment.slug, "enable_access"])
    body = as_manager.get(
        url, REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="198.51.100.20", **HTMX
    ).content.decode()
    assert 'value="10.0.0.5"' not in body and 'value="198.51.100.20"' not in body
    assert "a reverse proxy&#x27;s address" in body and "PORTAL_PROXY_COUNT" in body


def test_enable_access_behind_an_announced_proxy_offers_the_clients_address(
    as_manager, environment, settings
):
    settings.PORTAL_PROXY_COUNT = 1
    url = reverse("environment-maintain", args=[environment.slug, "enable_access"])
    body = as_manager.get(
        url, REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.20", **HTMX
    ).content.decode()
    assert 'value="198.51.100.20"' in body
    assert "PORTAL_PROXY_COUNT" not in body


def test_rule_is_applied_listed_with_expiry_and_recorded(as_manager, environment, manager):
    response = enable(as_manager, environment)
    assert response.status_code == 200
    run_worker()

    rule = FirewallRule.objects.get()
    assert rule.cidr == "203.0.113.7/32" and rule.applied_at is not None
    assert rule.expires_at - rule.created_at == timedelta(hours=8)
    operation = Operation.objects.get(kind=OperationKind.ENABLE_ACCESS)
    assert operation.outcome == Outcome.SUCCEEDED
    assert operation.activity == "Enable access: 203.0.113.7/32 (office)"
    assert "simulated firewall: allow 203.0.113.7/32" in operation.log_text
    body = as_manager.get(environment.get_absolute_url()).content.decode()
    assert 'data-testid="firewall-rule"' in body and "Active" in body


@pytest.mark.parametrize(
    "address, message",
    [
        ("not-an-ip", "Enter an IP address"),
        ("300.1.1.1", "Enter an IP address"),
        ("*", "would let every address reach the database"),
        ("0.0.0.0/0", "would let the whole internet reach the database"),
        ("::/0", "would let the whole internet reach the database"),
        ("10.0.0.0/16", "is wider than /24"),
        ("2001:db8::/48", "is wider than /64"),
        ("127.0.0.1", "is a loopback address"),
        ("::1", "is a loopback address"),
        ("169.254.10.1", "is a link-local address"),
        ("fe80::1", "is a link-local address"),
        ("224.0.0.1", "is a multicast address"),
        ("0.0.0.0", "is the unspecified address"),
        ("::ffff:0.0.0.0/96", "would let the whole internet reach the database"),
        ("::ffff:10.0.0.0/104", "is wider than /24"),
        ("::ffff:127.0.0.1", "is a loopback address"),
        ("64:ff9b::/96", "address translation range"),
        ("64:ff9b::a00:1", "address translation range"),
        ("2002:cb00:7107::/64", "address translation range"),
        ("", "This field is required"),
    ],
)
def test_bad_addresses_are_refused_with_a_message_and_nothing_saved(
    as_manager, environment, address, message
):
    response = enable(as_manager, environment, address=address)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not FirewallRule.objects.exists()
    assert not Operation.objects.exists()


def test_an_ipv4_mapped_address_is_kept_as_the_ipv4_address(as_manager, environment):
    enable(as_manager, environment, address="::ffff:203.0.113.9")
    assert FirewallRule.objects.get().cidr == "203.0.113.9/32"


def test_host_bits_are_normalised_to_the_network(as_manager, environment):
    enable(as_manager, environment, address="203.0.113.77/24")
    assert FirewallRule.objects.get().cidr == "203.0.113.0/24"


def test_a_rule_that_duplicates_an_active_one_is_refused(as_manager, environment):
    enable(as_manager, environment)
    run_worker()
    response = enable(as_manager, environment, name="again")
    assert response.status_code == 400
    assert "An active rule already allows 203.0.113.7/32" in response.content.decode()
    assert FirewallRule.objects.count() == 1


def test_a_rule_inside_an_active_range_is_refused_as_a_duplicate(as_manager, environment):
    enable(as_manager, environment, name="office", address="203.0.113.0/24")
    run_worker()
    response = enable(as_manager, environment, name="laptop", address="203.0.113.9")
    assert response.status_code == 400
    assert "already allows 203.0.113.9/32" in response.content.decode()
    assert "office (203.0.113.0/24)" in response.content.decode()
    assert FirewallRule.objects.count() == 1


def test_more_rules_than_the_limit_are_refused(as_manager, environment, settings):
    settings.ACCESS_MAX_ACTIVE_RULES = 2
    for i in range(2):
        enable(as_manager, environment, address=f"203.0.113.{i + 1}")
        run_worker()
    response = enable(as_manager, environment, address="203.0.113.9")
    assert response.status_code == 400
    assert "already has 2 active firewall rules" in response.content.decode()


@pytest.mark.parametrize("hours", ["0", "-1", "9", "1e9", "nan", "eight"])
def test_out_of_range_lifetimes_are_refused(as_manager, environment, hours):
    response = enable(as_manager, environment, hours=hours)
    assert response.status_code == 400
    assert not FirewallRule.objects.exists()


def test_shorter_lifetime_is_honoured(as_manager, environment):
    enable(as_manager, environment, hours="1.5")
    rule = FirewallRule.objects.get()
    assert rule.expires_at - rule.created_at == timedelta(hours=1.5)


def test_enable_access_is_refused_while_another_operation_runs(
    as_manager, environment, manager, start
):
    start(OperationKind.RESTART_SERVICE, environment, manager, service_kind="aos")
    response = enable(as_manager, environment)
    assert response.status_code == 409
    assert "Another operation is in progress" in response.content.decode()
    assert not FirewallRule.objects.exists()


def test_team_member_may_not_enable_access(client, member, environment):
    client.force_login(member)
    assert enable(client, environment).status_code == 403
    assert not FirewallRule.objects.exists()


def test_remove_ends_the_rule_and_history_says_who(as_manager, environment, manager):
    enable(as_manager, environment)
    run_worker()
    rule = FirewallRule.objects.get()
    url = reverse("firewall-rule-remove", args=[environment.slug, rule.pk])

    with committing():
        response = as_manager.post(url, **HTMX)
    run_worker()

    assert response.status_code == 200
    rule.refresh_from_db()
    assert rule.end_reason == AccessEnd.REMOVED and rule.ended_by == manager
    assert rule.removed_at is not None
    removal = Operation.objects.get(kind=OperationKind.REMOVE_ACCESS)
    assert removal.requested_by == manager and removal.outcome == Outcome.SUCCEEDED
    assert "remove the rule for 203.0.113.7/32" in removal.log_text
    assert as_manager.post(url, **HTMX).status_code == 409  # already ended


def test_rules_expire_through_the_sweeper(as_manager, environment):
    enable(as_manager, environment)
    run_worker()
    rule = FirewallRule.objects.get()
    FirewallRule.objects.filter(pk=rule.pk).update(expires_at=timezone.now())

    with committing():
        call_command("expire_access", verbosity=0)
    run_worker()

    rule.refresh_from_db()
    assert rule.end_reason == AccessEnd.EXPIRED and rule.ended_by is None
    assert rule.removed_at is not None
    removal = Operation.objects.get(kind=OperationKind.REMOVE_ACCESS)
    assert removal.requested_by is None and "Expired at" in removal.reason
    history = as_manager.get(reverse("environment-history", args=[environment.slug]))
    assert '<td data-label="Requested by">system</td>' in history.content.decode()
    export = as_manager.get(reverse("environment-history-csv", args=[environment.slug]))
    assert ",system," in b"".join(export.streaming_content).decode()


def test_rules_expire_through_the_task_enqueued_for_their_expiry(
    as_manager, environment, monkeypatch
):
    enable(as_manager, environment)
    run_worker()  # applies the rule and enqueues its expiry
    later = timezone.now() + timedelta(hours=8, seconds=5)
    monkeypatch.setattr(timezone, "now", lambda: later)

    run_worker()

    rule = FirewallRule.objects.get()
    assert rule.end_reason == AccessEnd.EXPIRED


def test_firewall_command_driver_runs_argument_lists(
    as_manager, environment, settings, monkeypatch, tmp_path
):
    settings.PORTAL_FIREWALL_DRIVER = "command"
    out = tmp_path / "rules"
    script = f"import sys; open({str(out)!r}, 'a').write(' '.join(sys.argv[1:]) + chr(10))"
    monkeypatch.setenv(
        "PORTAL_FIREWALL_APPLY", f'["python3", "-c", "{script}", "allow", "{{cidr}}"]'
    )
    monkeypatch.setenv(
        "PORTAL_FIREWALL_REMOVE", f'["python3", "-c", "{script}", "deny", "{{cidr}}"]'
    )
    enable(as_manager, environment)
    run_worker()
    rule = FirewallRule.objects.get()
    with committing():
        as_manager.post(reverse("firewall-rule-remove", args=[environment.slug, rule.pk]), **HTMX)
    run_worker()
    assert out.read_text().splitlines() == ["allow 203.0.113.7/32", "deny 203.0.113.7/32"]


def test_failed_firewall_command_fails_the_operation_not_the_environment(
    as_manager, environment, settings, monkeypatch
):
    settings.PORTAL_FIREWALL_DRIVER = "command"
    monkeypatch.setenv(
        "PORTAL_FIREWALL_APPLY", '["python3", "-c", "import sys; sys.exit(\'no route\')"]'
    )
    monkeypatch.setenv("PORTAL_FIREWALL_REMOVE", '["true"]')
    enable(as_manager, environment)
    run_worker()
    operation = Operation.objects.get(kind=OperationKind.ENABLE_ACCESS)
    assert operation.outcome == Outcome.FAILED and "no route" in operation.error
    environment.refresh_from_db()
    assert environment.status == "deployed"
    assert FirewallRule.objects.get().end_reason == AccessEnd.FAILED


def test_rule_removed_while_being_applied_is_removed_once_applied(as_manager, environment, manager):
    enable(as_manager, environment)  # queued, not applied yet
    rule = FirewallRule.objects.get()
    with committing():
        response = as_manager.post(
            reverse("firewall-rule-remove", args=[environment.slug, rule.pk]), **HTMX
        )
    assert response.status_code == 200
    assert not Operation.objects.filter(kind=OperationKind.REMOVE_ACCESS).exists()

    run_worker()  # applies, then removes

    rule.refresh_from_db()
    assert rule.applied_at is not None and rule.removed_at is not None
    assert rule.removed_at >= rule.applied_at
    removal = Operation.objects.get(kind=OperationKind.REMOVE_ACCESS)
    assert removal.requested_by == manager and removal.outcome == Outcome.SUCCEEDED


def test_failed_removals_are_retried_with_back_off(as_manager, environment, settings, monkeypatch):
    from environments.operations import expire_access

    enable(as_manager, environment)
    run_worker()
    settings.PORTAL_FIREWALL_DRIVER = "command"
    monkeypatch.setenv("PORTAL_FIREWALL_REMOVE", '["false"]')
    rule = FirewallRule.objects.get()
    with committing():
        as_manager.post(reverse("firewall-rule-remove", args=[environment.slug, rule.pk]), **HTMX)
    run_worker()
    removals = Operation.objects.filter(kind=OperationKind.REMOVE_ACCESS)
    assert [op.outcome for op in removals] == [Outcome.FAILED]

    with committing():
        assert expire_access() == []  # too soon after the failure
        first_retry = timezone.now() + timedelta(minutes=1, seconds=1)
        assert expire_access(now=first_retry) == [rule]  # a minute later: retried
    run_worker()  # fails again
    failed_again = removals.order_by("-finished_at").first().finished_at
    with committing():
        # now it waits two minutes
        assert expire_access(now=failed_again + timedelta(minutes=1, seconds=30)) == []
    monkeypatch.setenv("PORTAL_FIREWALL_REMOVE", '["true"]')
    with committing():
        assert expire_access(now=failed_again + timedelta(minutes=2, seconds=1)) == [rule]
    run_worker()
    rule.refresh_from_db()
    assert rule.removed_at is not None
    assert removals.all().count() == 3  # a fresh query: the first look cached one row


def test_a_removal_that_keeps_failing_waits_twice_as_long_each_time_up_to_an_hour(
    as_manager, environment, settings, monkeypatch
):
    from environments.operations import expire_access

    enable(as_manager, environment)
    run_worker()
    settings.PORTAL_FIREWALL_DRIVER = "command"
    monkeypatch.setenv("PORTAL_FIREWALL_REMOVE", '["false"]')
    rule = FirewallRule.objects.get()
    with committing():
        as_manager.post(reverse("firewall-rule-remove", args=[environment.slug, rule.pk]), **HTMX)
    run_worker()
    removals = Operation.objects.filter(kind=OperationKind.REMOVE_ACCESS)

    # The wait after each failure: doubled from a minute, at most an hour.
    for failures, minutes in enumerate([1, 2, 4, 8, 16, 32, 60, 60], start=1):
        assert removals.filter(outcome=Outcome.FAILED).count() == failures
        wait = timedelta(minutes=minutes)
        failed_at = removals.order_by("-finished_at").first().finished_at
        with committing():
            too_soon = expire_access(now=failed_at + wait - timedelta(seconds=1))
            assert too_soon == [], f"retried before {minutes} min after failure {failures}"
            assert expire_access(now=failed_at + wait) == [rule], f"not due after {minutes} min"
        run_worker()  # fails again

    assert removals.filter(outcome=Outcome.FAILED).count() == 9


def test_history_shows_when_a_rule_expires_and_how_it_ended(as_manager, environment, manager):
    import csv
    import io

    enable(as_manager, environment)
    run_worker()
    rule = FirewallRule.objects.get()
    with committing():
        as_manager.post(reverse("firewall-rule-remove", args=[environment.slug, rule.pk]), **HTMX)
    run_worker()
    rule.refresh_from_db()

    grant_op = Operation.objects.get(kind=OperationKind.ENABLE_ACCESS)
    page = as_manager.get(
        reverse("operation-detail", args=[environment.slug, grant_op.activity_id])
    ).content.decode()
    assert f"Removed by mona at {rule.ended_at:%Y-%m-%d %H:%M:%S}" in page
    assert f"{rule.expires_at:%Y-%m-%d %H:%M:%S}" in page

    export = as_manager.get(reverse("environment-history-csv", args=[environment.slug]))
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))
    granted = next(row for row in rows if row["activity"].startswith("Enable access"))
    assert granted["access_expires (UTC)"] == f"{rule.expires_at:%Y-%m-%d %H:%M:%S}"
    assert granted["access_ended (UTC)"] == f"{rule.ended_at:%Y-%m-%d %H:%M:%S}"
    assert granted["access_end"] == "Removed by mona"
