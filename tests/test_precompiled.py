"""Queries compiled once: the same answers as the querysets they come from."""

from django.urls import reverse

from environments.models import Environment
from environments.precompiled import ModelBackend, PrecompiledQuery


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
