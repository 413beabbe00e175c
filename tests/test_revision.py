"""Environment.revision moves with everything the environment's pages show: it is the
key of their caches and ETags, so a change it missed would be served stale."""

import pytest
from django.urls import reverse

from environments import operations
from environments.models import (
    AccessLevel,
    Environment,
    EnvironmentRole,
    EnvironmentRoleKind,
    OperationKind,
    ProjectMembership,
    ProjectRole,
    Service,
    ServiceKind,
)
from tests.conftest import make_user
from tests.helpers import environment_form


def revision(environment):
    return Environment.objects.values_list("revision", flat=True).get(pk=environment.pk)


def start_restart(environment, user):
    return operations.restart_service(environment, user, "aos")


def grant_rule(environment, user):
    operation = operations.enable_access(
        environment, user, name="office", cidr="203.0.113.7/32", reason="support"
    )
    operations.complete_operation(operation.pk)
    return operation.firewall_rule


def add_service(environment):
    # Taken away behind the revision's back (a bulk delete), then added as the admin does.
    Service.objects.filter(environment=environment, kind=ServiceKind.MR).delete()
    Service.objects.create(environment=environment, kind=ServiceKind.MR)


CHANGES = {
    "an operation starts": lambda env, user: start_restart(env, user),
    "the worker claims it": lambda env, user: operations.claim_step(start_restart(env, user).pk, 1),
    "it succeeds": lambda env, user: operations.complete_operation(start_restart(env, user).pk),
    "it fails": lambda env, user: operations.fail_operation(start_restart(env, user).pk, "boom"),
    "an access grant is applied": grant_rule,
    "an access grant ends": lambda env, user: operations.remove_access(grant_rule(env, user), user),
    "a service is added": lambda env, user: add_service(env),
    "a service is deleted": lambda env, user: env.services.first().delete(),
    "an environment role is given": lambda env, user: EnvironmentRole.objects.create(
        environment=env, user=make_user("maya"), role=EnvironmentRoleKind.USER
    ),
    "a project membership is added": lambda env, user: ProjectMembership.objects.create(
        project=env.project, user=make_user("tom"), role=ProjectRole.MEMBER
    ),
    "a project membership is deleted": lambda env, user: ProjectMembership.objects.get(
        user=user
    ).delete(),
    "the project is renamed": lambda env, user: (
        setattr(env.project, "name", "Contoso 2") or env.project.save()
    ),
}


@pytest.mark.parametrize("change", CHANGES)
def test_the_revision_moves_with_everything_the_details_page_shows(environment, manager, change):
    before = revision(environment)
    CHANGES[change](environment, manager)
    after = revision(environment)
    # Each grant moves it at least twice (requested, then applied): only "it moved" counts.
    assert after > before


def test_a_role_removed_in_the_admin_moves_the_revision(client, superuser, environment):
    role = EnvironmentRole.objects.create(
        environment=environment, user=make_user("maya"), role=EnvironmentRoleKind.USER
    )
    client.force_login(superuser)
    before = revision(environment)

    client.post(
        reverse("admin:environments_environmentrole_delete", args=[role.pk]), {"post": "yes"}
    )

    assert revision(environment) > before


def test_memberships_deleted_in_bulk_in_the_admin_move_the_revision(
    client, superuser, environment, manager, member
):
    client.force_login(superuser)
    before = revision(environment)

    client.post(
        reverse("admin:environments_projectmembership_changelist"),
        {
            "action": "delete_selected",
            "post": "yes",
            "_selected_action": list(ProjectMembership.objects.values_list("pk", flat=True)),
        },
    )

    assert not ProjectMembership.objects.exists()
    assert revision(environment) > before


def test_an_environment_edited_in_the_admin_shows_at_once_and_keeps_its_status(
    client, superuser, environment, manager, start
):
    start(OperationKind.RESTART_SERVICE, environment, manager, service_kind="aos")
    client.force_login(manager)
    assert b"Demo sandbox" in client.get(environment.get_absolute_url()).content
    client.force_login(superuser)
    form = environment_form(environment, [], list(environment.services.all()))

    response = client.post(
        reverse("admin:environments_environment_change", args=[environment.pk]),
        {**form, "name": "Renamed sandbox"},
    )

    assert response.status_code == 302
    environment.refresh_from_db()
    assert environment.status == "restarting_service"
    client.force_login(manager)
    page = client.get(reverse("environment-status", args=[environment.slug]), HTTP_HX_REQUEST="1")
    assert b"Restarting service" in page.content
    assert b"Renamed sandbox" in client.get(environment.get_absolute_url()).content


def test_a_page_kept_in_the_cache_shows_the_change_that_moved_the_revision(
    client, environment, manager, member
):
    client.force_login(member)
    url = reverse("environment-status", args=[environment.slug])
    assert b"tom" not in client.get(url, HTTP_HX_REQUEST="1").content
    EnvironmentRole.objects.create(
        environment=environment, user=member, role=EnvironmentRoleKind.MAINTENANCE_MODE_USER
    )
    operations.enable_maintenance(environment, manager)

    assert b"tom (Maintenance mode user)" in client.get(url, HTTP_HX_REQUEST="1").content


def rule_being_applied(environment, user):
    operation = operations.enable_access(
        environment, user, name="office", cidr="203.0.113.7/32", reason="support"
    )
    return operation.firewall_rule, operations.remove_access, b'data-testid="firewall-rule"'


def account_being_applied(environment, user):
    operation = operations.request_access(
        environment, user, level=AccessLevel.READ, reason="support"
    )
    return operation.database_account, operations.revoke_access, b'data-testid="database-account"'


@pytest.mark.parametrize("grant", [rule_being_applied, account_being_applied])
def test_a_grant_ended_while_it_is_still_being_applied_leaves_the_cached_page_at_once(
    client, environment, manager, grant
):
    """Its removal is queued only once the apply settles, but the page shows it ended
    now: the end itself moves the revision."""
    grant, end, row = grant(environment, manager)  # queued: the worker has not applied it
    assert grant.applied_at is None
    client.force_login(manager)
    url = reverse("environment-status", args=[environment.slug])
    shown = client.get(url, HTTP_HX_REQUEST="1")
    assert row in shown.content

    assert end(grant, manager)

    poll = client.get(url, HTTP_IF_NONE_MATCH=shown["ETag"], HTTP_HX_REQUEST="1")
    assert poll.status_code == 200
    assert row not in poll.content
    assert row not in client.get(url, HTTP_HX_REQUEST="1").content


def test_a_user_renamed_in_the_admin_shows_renamed_at_once(client, superuser, environment, maint):
    from tests.helpers import user_page_form

    client.force_login(superuser)
    before = revision(environment)
    data = user_page_form(client, maint)
    data["username"] = "maya-renamed"
    response = client.post(reverse("admin:auth_user_change", args=[maint.pk]), data)
    assert response.status_code == 302
    assert revision(environment) > before
