"""Single sign-on in a real Chromium, through the real OpenID provider's own pages
(tests/oidc/provider.mjs): a group gives Environment manager, and losing it at the
provider takes the role and the grants it allowed away at the next sign-in."""

import pytest
from playwright.sync_api import expect

from environments import operations
from environments.models import (
    AccessEnd,
    AccessLevel,
    DatabaseAccount,
    ExternalIdentity,
    GroupRole,
    Operation,
    OperationKind,
    ProjectMembership,
    ProjectRole,
)
from tests.oidc_provider import start_provider, stop_provider, use_provider

pytestmark = pytest.mark.browser

ALICE = {"preferred_username": "alice.sso", "name": "Alice Example", "groups": ["ops"]}


@pytest.fixture
def provider(live_server, tmp_path, settings, transactional_db):
    provider, process = start_provider(tmp_path, [live_server.url], {"alice": ALICE})
    use_provider(settings, provider, name="Test IdP")
    yield provider
    stop_provider(process)


def sign_in_at_provider(browser, live_server):
    context = browser.new_context()
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_role("link", name="Sign in with Test IdP").click()
    # The provider's own login page, then its consent page.
    page.fill("input[name=login]", "alice")
    page.fill("input[name=password]", "any password")
    page.click("button[type=submit]")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/environments/")
    return context, page


def test_a_group_gives_environment_manager_and_losing_it_ends_the_role_and_its_grant(
    browser, live_server, provider, project, environment
):
    GroupRole.objects.create(group="ops", project=project, project_role=ProjectRole.MANAGER)
    context, page = sign_in_at_provider(browser, live_server)
    page.goto(f"{live_server.url}/environments/{environment.slug}/")
    expect(page.locator("#maintain-toggle")).to_be_visible()
    user = ExternalIdentity.objects.get().user
    requested = operations.request_access(environment, user, level=AccessLevel.READ, reason="x")
    operations.complete_operation(requested.pk)
    context.close()

    provider.set_accounts({"alice": {**ALICE, "groups": []}})
    context, page = sign_in_at_provider(browser, live_server)
    assert not ProjectMembership.objects.filter(user=user).exists()
    assert DatabaseAccount.objects.get(requested_by=user).end_reason == AccessEnd.ROLE_REMOVED
    page.goto(f"{live_server.url}/environments/{environment.slug}/")
    expect(page.locator("#maintain-toggle")).to_have_count(0)
    # The history says why (the user may no longer read it: the row is checked here).
    revoke = Operation.objects.get(kind=OperationKind.REVOKE_ACCESS)
    assert "role no longer allows maintaining" in revoke.reason
    context.close()
