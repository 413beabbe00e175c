"""Queries compiled once: the same answers as the querysets they come from."""

import pytest
from django.contrib.auth import BACKEND_SESSION_KEY, SESSION_KEY
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.sessions.backends.db import SessionStore
from django.core.paginator import Paginator
from django.db.models import F
from django.test import RequestFactory
from django.urls import reverse

from environments.context_processors import USER_WITH_PROJECTS
from environments.models import Environment, ProjectMembership, ProjectRole
from environments.precompiled import (
    SENTINEL_ID,
    SENTINEL_SLUG,
    ModelBackend,
    Paginated,
    PrecompiledQuery,
    load_signed_in_user,
)
from tests.conftest import make_environment


def test_a_precompiled_query_takes_new_values_each_time(project, environment, other_environment):
    query = PrecompiledQuery(lambda slug: Environment.objects.filter(slug=slug), slug="sentinel")

    assert query.first(slug=environment.slug) == environment
    assert query.first(slug=other_environment.slug) == other_environment
    assert query.first(slug="no-such-environment") is None


def test_the_backend_loads_active_users_only(owner):
    backend = ModelBackend()

    assert backend.get_user(owner.pk) == owner
    assert backend.get_user(str(owner.pk)) == owner
    assert backend.get_user(owner.pk + 1000) is None
    assert backend.get_user("not a number") is None
    owner.is_active = False
    owner.save()
    assert backend.get_user(owner.pk) is None


def test_a_deactivated_user_is_signed_out_at_the_next_request(client, owner):
    client.force_login(owner)
    assert client.get(reverse("environment-list")).status_code == 200

    owner.is_active = False
    owner.save()

    assert client.get(reverse("environment-list")).status_code == 302


def test_a_changed_password_ends_other_sessions(client, owner):
    client.force_login(owner)
    owner.set_password("a brand new passphrase")
    owner.save()

    assert client.get(reverse("environment-list")).status_code == 302


def test_precompiled_rows_and_count_page_through_a_query(project):
    from django.core.paginator import Paginator

    from environments.precompiled import Paginated
    from tests.conftest import make_environment

    for _ in range(7):
        make_environment(project)
    query = PrecompiledQuery(
        lambda project: Environment.objects.filter(project=project).values("slug"),
        project=-1,
    )
    expected = list(Environment.objects.filter(project=project).values_list("slug", flat=True))
    paginator = Paginator(Paginated(query, 3, project=project.pk), 3)

    assert query.count(project=project.pk) == 7
    assert query.count(project=project.pk + 1000) == 0
    assert paginator.num_pages == 3
    assert [row["slug"] for n in (1, 2, 3) for row in paginator.page(n)] == expected
    # As Paginator.get_page reads them: not a number is page 1, past the end the last.
    assert paginator.get_page("x").number == 1
    assert paginator.get_page("1" + "0" * 30).number == 3
    assert query.rows(project=project.pk) == [{"slug": slug} for slug in expected]


def test_values_written_into_the_sql_answer_for_each_value(project, other_project):
    from tests.conftest import make_environment

    mine, theirs = make_environment(project), make_environment(other_project)
    query = PrecompiledQuery(
        lambda project: Environment.objects.filter(project=project).values("slug"),
        written_in=["project"],
        project=-918_273_645,
    )

    for _ in range(7):  # past psycopg's prepare threshold: prepared statements answer too
        assert query.rows(project=project.pk) == [{"slug": mine.slug}]
        assert query.rows(project=other_project.pk) == [{"slug": theirs.slug}]
        assert query.count(project=project.pk) == 1


def test_precompiled_rows_hold_the_values_values_would_give(environment):
    query = PrecompiledQuery(
        lambda slug: Environment.objects.filter(slug=slug).values("status_changed_at", "tier"),
        slug="sentinel",
    )

    assert query.rows(slug=environment.slug) == list(
        Environment.objects.filter(slug=environment.slug).values("status_changed_at", "tier")
    )


# An environment of the user's projects, with its project's name: the shape of the views'.
_MEMBERS_ENVIRONMENT = PrecompiledQuery(
    lambda user, slug: Environment.objects.filter(
        slug=slug, project__memberships__user=user
    ).annotate(project_name=F("project__name")),
    user=SENTINEL_ID,
    slug=SENTINEL_SLUG,
)

# Any environment, whoever asks: a row that only the sign-in checks can withhold.
_ANY_ENVIRONMENT = PrecompiledQuery(
    lambda slug: Environment.objects.filter(slug=slug), slug=SENTINEL_SLUG
)


def _request(session):
    """A request as the middleware hands it to a view: its session already read (that
    query is the session middleware's), its user not yet loaded."""
    request = RequestFactory().get("/")
    request.session = session
    request.session.get(SESSION_KEY)
    AuthenticationMiddleware(lambda request: None).process_request(request)
    return request


def _signed_in(client, user):
    client.force_login(user)
    return _request(client.session)


def test_first_for_signed_in_brings_the_row_and_the_user_in_one_query(
    client, owner, environment, django_assert_num_queries
):
    request = _signed_in(client, owner)

    with django_assert_num_queries(1):
        found = _MEMBERS_ENVIRONMENT.first_for_signed_in(request, slug=environment.slug)
        assert request.user == owner

    assert found == environment
    assert found.project_name == "Contoso"  # an annotation, as first() gives it
    assert request.user.is_authenticated


def test_a_signed_in_user_without_a_row_is_still_signed_in_by_that_query(
    client, outsider, environment, django_assert_num_queries
):
    request = _signed_in(client, outsider)

    with django_assert_num_queries(1):
        assert _MEMBERS_ENVIRONMENT.first_for_signed_in(request, slug=environment.slug) is None
        assert request.user == outsider


def test_a_values_query_gives_its_row_as_a_dict(client, owner, environment):
    query = PrecompiledQuery(
        lambda user, slug: Environment.objects.filter(
            slug=slug, project__memberships__user=user
        ).values("slug", "tier"),
        user=SENTINEL_ID,
        slug=SENTINEL_SLUG,
    )

    found = query.first_for_signed_in(_signed_in(client, owner), slug=environment.slug)

    assert found == {"slug": environment.slug, "tier": environment.tier}


def test_a_deactivated_user_gets_no_row_and_is_not_signed_in(client, owner, environment):
    request = _signed_in(client, owner)
    owner.is_active = False
    owner.save()

    assert _ANY_ENVIRONMENT.first_for_signed_in(request, slug=environment.slug) is None
    assert not request.user.is_authenticated


def test_a_session_from_before_a_password_change_gets_no_row_and_is_ended(
    client, owner, environment
):
    request = _signed_in(client, owner)
    owner.set_password("a brand new passphrase")
    owner.save()

    assert _ANY_ENVIRONMENT.first_for_signed_in(request, slug=environment.slug) is None
    assert not request.user.is_authenticated
    assert SESSION_KEY not in request.session  # Django's get_user flushed it


def test_a_session_of_a_backend_no_longer_configured_gets_no_row(client, owner, environment):
    request = _signed_in(client, owner)
    request.session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.RemoteUserBackend"

    assert _ANY_ENVIRONMENT.first_for_signed_in(request, slug=environment.slug) is None
    assert not request.user.is_authenticated


def test_a_session_whose_user_was_deleted_gets_no_row(client, owner, environment):
    request = _signed_in(client, owner)
    owner.delete()

    assert _ANY_ENVIRONMENT.first_for_signed_in(request, slug=environment.slug) is None
    assert not request.user.is_authenticated


def test_a_request_without_a_session_user_gets_no_row_without_a_query(
    environment, django_assert_num_queries
):
    request = _request(SessionStore())

    with django_assert_num_queries(0):
        assert _ANY_ENVIRONMENT.first_for_signed_in(request, slug=environment.slug) is None
        assert not request.user.is_authenticated


def test_the_user_lookup_with_projects_brings_their_names_in_the_same_query(
    client, owner, environment, other_project, django_assert_num_queries
):
    ProjectMembership.objects.create(user=owner, project=other_project, role=ProjectRole.MEMBER)
    request = _signed_in(client, owner)

    with django_assert_num_queries(1):
        found = _MEMBERS_ENVIRONMENT.first_for_signed_in(
            request, slug=environment.slug, users=USER_WITH_PROJECTS
        )
        assert sorted(request.user.project_names) == ["Contoso", "Fabrikam"]

    assert found == environment


def test_load_signed_in_user_brings_the_users_project_names_in_one_query(
    client, owner, other_project, django_assert_num_queries
):
    ProjectMembership.objects.create(user=owner, project=other_project, role=ProjectRole.MEMBER)
    request = _signed_in(client, owner)

    with django_assert_num_queries(1):
        load_signed_in_user(request, USER_WITH_PROJECTS)
        assert request.user == owner
        assert sorted(request.user.project_names) == ["Contoso", "Fabrikam"]


def test_load_signed_in_user_still_refuses_a_deactivated_user(client, owner):
    request = _signed_in(client, owner)
    owner.is_active = False
    owner.save()

    load_signed_in_user(request, USER_WITH_PROJECTS)

    assert not request.user.is_authenticated


_SLUGS = PrecompiledQuery(
    lambda project: Environment.objects.filter(project=project).values("slug"), project=-1
)


@pytest.fixture
def seven_slugs(project):
    for _ in range(7):
        make_environment(project)
    return list(Environment.objects.filter(project=project).values_list("slug", flat=True))


def _page(project, number):
    """The page ``number`` as the list view reads it: 3 rows a page."""
    return Paginator(Paginated(_SLUGS, 3, number, project=project.pk), 3).get_page(number)


@pytest.mark.parametrize("number", ["1", "2"])
def test_a_page_and_the_count_come_in_one_query(
    project, seven_slugs, number, django_assert_num_queries
):
    with django_assert_num_queries(1):
        page = _page(project, number)
        assert page.paginator.count == 7
        rows = list(page)

    start = (int(number) - 1) * 3
    assert [row["slug"] for row in rows] == seven_slugs[start : start + 3]


@pytest.mark.parametrize("number", ["9", "1" + "0" * 30])
def test_a_page_past_the_end_is_the_last_page(project, seven_slugs, number):
    page = _page(project, number)

    assert page.number == 3
    assert [row["slug"] for row in page] == seven_slugs[6:]


def test_a_page_that_is_not_a_number_is_the_first_page(
    project, seven_slugs, django_assert_num_queries
):
    with django_assert_num_queries(1):
        page = _page(project, "x")
        assert [row["slug"] for row in page] == seven_slugs[:3]

    assert page.number == 1


def test_a_query_without_rows_is_one_empty_page(project):
    page = _page(project, "2")

    assert (page.number, page.paginator.count, list(page)) == (1, 0, [])
