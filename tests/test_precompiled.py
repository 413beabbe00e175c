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
