"""What scripts rely on besides the answers: ETags and 304 on an environment, an
operation and a window; lists paged through Link rel="next" without changing their
bodies; and RateLimit headers on every counted answer."""

import re
from datetime import timedelta

from django.utils import timezone

from environments import windows
from environments.models import MaintenanceWindow, TokenScope
from tests.api_clients import API, api_client
from tests.conftest import make_environment
from tests.helpers import add_history


def next_link(response):
    match = re.fullmatch(r'<([^>]+)>; rel="next"', response.get("Link", ""))
    return match and match.group(1)


def all_pages(client, url):
    pages = []
    while url:
        response = client.get(url)
        assert response.status_code == 200
        pages.append(response.json())
        url = next_link(response)
    return pages


# --- Conditional GETs ---------------------------------------------------------------


def test_an_unchanged_environment_answers_304_to_its_etag(api_as_manager, environment):
    path = f"{API}/environments/{environment.slug}"
    first = api_as_manager.get(path)
    again = api_as_manager.get(path, headers={"If-None-Match": first["ETag"]})
    assert again.status_code == 304 and again.content == b""
    assert again["ETag"] == first["ETag"]


def test_a_change_the_pages_show_changes_the_etag(api_as_manager, environment, manager):
    path = f"{API}/environments/{environment.slug}"
    etag = api_as_manager.get(path)["ETag"]
    windows.schedule(
        environment,
        manager,
        starts_at=timezone.now() + timedelta(days=1),
        ends_at=timezone.now() + timedelta(days=1, hours=1),
        reason="patching",
        notify_users=False,
    )
    answer = api_as_manager.get(path, headers={"If-None-Match": etag})
    assert answer.status_code == 200 and answer["ETag"] != etag
    assert answer.json()["maintenance_window"] is not None


def test_the_etag_differs_by_the_tokens_scope_and_the_viewers_role(environment, manager, member):
    path = f"{API}/environments/{environment.slug}"
    tags = {
        api_client(manager).get(path)["ETag"],
        api_client(manager, TokenScope.READ).get(path)["ETag"],
        api_client(member).get(path)["ETag"],
    }
    assert len(tags) == 3
    read_tag = api_client(manager, TokenScope.READ).get(path)["ETag"]
    answer = api_client(manager).get(path, headers={"If-None-Match": read_tag})
    assert answer.status_code == 200 and answer.json()["available_actions"]


def test_operations_and_windows_answer_304_too(api_as_manager, environment, manager):
    started = api_as_manager.post(
        f"{API}/environments/{environment.slug}/operations",
        {"action": "enable_maintenance", "reason": "patching"},
        content_type="application/json",
    )
    window = windows.schedule(
        environment,
        manager,
        starts_at=timezone.now() + timedelta(days=2),
        ends_at=timezone.now() + timedelta(days=2, hours=1),
        reason="patching",
        notify_users=False,
    )
    for path in [started["Location"], f"{API}/maintenance-windows/{window.pk}"]:
        etag = api_as_manager.get(path)["ETag"]
        assert api_as_manager.get(path, headers={"If-None-Match": etag}).status_code == 304
    windows.cancel(window, manager, reason="moved")
    path = f"{API}/maintenance-windows/{window.pk}"
    assert api_as_manager.get(path, headers={"If-None-Match": etag}).status_code == 200


# --- Paging ---------------------------------------------------------------------------


def test_environments_stay_one_array_without_a_limit(api_as_manager, project):
    for _ in range(4):
        make_environment(project)
    answer = api_as_manager.get(f"{API}/environments")
    assert isinstance(answer.json(), list) and len(answer.json()) == 4
    assert not answer.has_header("Link")


def test_environments_page_through_link_with_a_limit(api_as_manager, project):
    for _ in range(5):
        make_environment(project)
    whole = [e["slug"] for e in api_as_manager.get(f"{API}/environments").json()]
    pages = all_pages(api_as_manager, f"{API}/environments?limit=2&project={project.slug}")
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [e["slug"] for page in pages for e in page] == whole


def test_a_bad_cursor_is_400(api_as_manager):
    answer = api_as_manager.get(f"{API}/environments?limit=2&cursor=not-a-cursor")
    assert answer.status_code == 400 and "cursor" in answer.json()["detail"]


def test_the_history_keeps_next_and_adds_link(api_as_manager, environment, manager):
    add_history(environment, manager, 5)
    first = api_as_manager.get(f"{API}/history?limit=2")
    assert next_link(first) == first.json()["next"]
    pages = [page["items"] for page in all_pages(api_as_manager, f"{API}/history?limit=2")]
    assert [len(page) for page in pages] == [2, 2, 1]


def test_windows_page_instead_of_stopping_at_the_limit(api_as_manager, environment, manager):
    start = timezone.now() - timedelta(days=30)
    for day in range(5):
        MaintenanceWindow.objects.create(
            environment=environment,
            starts_at=start + timedelta(days=day),
            ends_at=start + timedelta(days=day, hours=1),
            reason="old",
            state="completed",
            scheduled_by=manager,
        )
    path = f"{API}/environments/{environment.slug}/maintenance-windows?state=completed&limit=2"
    pages = all_pages(api_as_manager, path)
    starts = [w["starts_at"] for page in pages for w in page]
    assert [len(page) for page in pages] == [2, 2, 1]
    assert starts == sorted(starts, reverse=True) and len(set(starts)) == 5


# --- Rate limit headers -----------------------------------------------------------------


def test_every_counted_answer_says_the_rate_limit(api_as_manager, environment, settings):
    settings.API_RATE_LIMIT = 3
    answers = [api_as_manager.get(f"{API}/environments") for _ in range(4)]
    assert [a["RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert all(a["RateLimit-Limit"] == "3" for a in answers)
    assert all(0 < int(a["RateLimit-Reset"]) <= 60 for a in answers)
    missing = api_as_manager.get(f"{API}/environments/no-such-one")
    assert missing.status_code == 429 and missing.has_header("RateLimit-Remaining")
