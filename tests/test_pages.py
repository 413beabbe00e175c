"""Every page for each role: what they see, and what they are refused."""

import re

import pytest
from django.urls import reverse

from environments.models import OperationKind
from tests.conftest import PASSWORD


def client_for(client, user):
    if user is not None:
        client.force_login(user)
    return client


def page_urls(environment):
    return {
        "list": reverse("environment-list"),
        "detail": reverse("environment-detail", args=[environment.slug]),
        "status": reverse("environment-status", args=[environment.slug]),
        "history": reverse("environment-history", args=[environment.slug]),
        "history_csv": reverse("environment-history-csv", args=[environment.slug]),
        "all_history": reverse("history"),
    }


VIEWERS = ["member", "manager", "owner", "superuser"]


@pytest.mark.parametrize("page", ["list", "detail", "status", "history", "all_history"])
def test_anonymous_users_are_sent_to_sign_in(client, environment, page):
    url = page_urls(environment)[page]
    response = client.get(url)
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


@pytest.mark.parametrize("page", ["detail", "status", "history", "history_csv"])
def test_outsider_gets_404_for_another_projects_environment(client, environment, outsider, page):
    response = client_for(client, outsider).get(page_urls(environment)[page])
    assert response.status_code == 404


@pytest.mark.parametrize("who", VIEWERS)
@pytest.mark.parametrize("page", ["list", "detail", "history", "all_history"])
def test_project_members_and_superusers_see_the_pages(client, environment, users, who, page, start):
    start(OperationKind.ENABLE_MAINTENANCE, environment, users["manager"])
    response = client_for(client, users[who]).get(page_urls(environment)[page])
    assert response.status_code == 200
    assert environment.name in response.content.decode()


def test_list_shows_only_the_users_projects(client, environment, other_environment, member):
    body = client_for(client, member).get(reverse("environment-list")).content.decode()
    assert environment.name in body
    assert other_environment.name not in body


def test_superuser_list_shows_every_environment(client, environment, other_environment, superuser):
    body = client_for(client, superuser).get(reverse("environment-list")).content.decode()
    assert environment.name in body and other_environment.name in body


def test_list_shows_name_project_tier_type_and_status(client, environment, member):
    body = client_for(client, member).get(reverse("environment-list")).content.decode()
    for text in ["Demo sandbox", "Contoso", "Tier 2", "Sandbox", "Deployed"]:
        assert text in body


def test_details_show_facts_services_and_status(client, environment, member):
    body = client_for(client, member).get(environment.get_absolute_url()).content.decode()
    for text in [
        "Deployed",
        "Tier 2",
        "Sandbox",
        "Microsoft",
        "Self-service",
        environment.url,
        "AOS service",
        "DIXF (Data import export framework service)",
        "MR (Management Reporter service)",
    ]:
        assert text in body


def test_team_member_sees_no_maintain_menu(client, environment, member):
    body = client_for(client, member).get(environment.get_absolute_url()).content.decode()
    assert "Maintain" not in body.replace("maintenance", "")
    assert 'data-testid="maintain"' not in body


@pytest.mark.parametrize("who", ["manager", "owner", "superuser"])
def test_maintainers_see_exactly_the_allowed_actions(client, environment, users, who):
    body = client_for(client, users[who]).get(environment.get_absolute_url()).content.decode()
    assert 'data-testid="maintain-menu"' in body
    assert ">Restart service</a>" in body
    assert ">Enable Maintenance mode</a>" in body
    assert ">Disable Maintenance mode</a>" not in body
    assert ">Resume</a>" not in body


def test_ineligible_environment_says_why_restart_is_not_offered(client, project, manager):
    from tests.conftest import make_environment

    environment = make_environment(project, tier=1)
    body = client_for(client, manager).get(environment.get_absolute_url()).content.decode()
    assert ">Restart service</a>" not in body
    assert "it is Tier 1, not Tier 2 to 5" in body


def test_menu_says_an_operation_is_in_progress_and_offers_nothing(
    client, environment, manager, start
):
    start(OperationKind.RESTART_SERVICE, environment, manager, service_kind="aos")
    body = client_for(client, manager).get(environment.get_absolute_url()).content.decode()
    assert "An operation is in progress" in body
    assert "Restart service: AOS" in body
    assert 'data-testid="maintain-menu"' not in body
    assert 'hx-trigger="every 1s, poll-now"' in body


def test_sign_in_page_signs_in_and_lands_on_the_environment_list(client, member):
    response = client.post(reverse("login"), {"username": "tom", "password": PASSWORD}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("environment-list")
    assert "tom" in response.content.decode()


def test_wrong_password_gets_a_clear_message(client, member):
    response = client.post(reverse("login"), {"username": "tom", "password": "nope"})
    assert response.status_code == 200
    assert "did not match" in response.content.decode()


def test_header_shows_the_user(client, environment, member):
    body = client_for(client, member).get(reverse("environment-list")).content.decode()
    assert 'data-testid="user-name">tom<' in body


def test_sign_out_ends_the_session(client, member):
    client_for(client, member).post(reverse("logout"))
    assert client.get(reverse("environment-list")).status_code == 302


def test_pages_load_htmx_from_the_bundled_copy_not_a_cdn(client, member):
    body = client_for(client, member).get(reverse("environment-list")).content.decode()
    assert "/static/django_htmx/htmx-2" in body
    # Every script and style sheet comes from the portal itself (read the attributes,
    # not the whole page: a CSRF token may spell "cdn" by chance).
    loaded = re.findall(r'<(?:script|link)\b[^>]*?\b(?:src|href)="([^"]+)"', body)
    assert loaded and all(url.startswith("/static/") for url in loaded), loaded


def test_maintain_menu_lists_actions_in_the_order_of_lifecycle_services(
    client, environment, manager
):
    body = client_for(client, manager).get(environment.get_absolute_url()).content.decode()
    positions = [
        body.index(f">{label}</a>")
        for label in ["Restart service", "Enable Maintenance mode", "Enable access"]
    ]
    assert positions == sorted(positions)


def test_environments_sharing_a_name_each_appear_once_across_the_pages(
    client, project, member, monkeypatch
):
    from environments.web import environment_list as views
    from tests.conftest import make_environment

    slugs = {make_environment(project, name="Sandbox").slug for _ in range(40)}
    monkeypatch.setattr(views, "ENVIRONMENTS_PER_PAGE", 7)
    client.force_login(member)

    shown = []
    for number in range(1, 7):
        page = client.get(reverse("environment-list"), {"page": number}).content.decode()
        shown += [slug for slug in slugs if f"/environments/{slug}/" in page]

    assert sorted(shown) == sorted(slugs)
