"""Access lasts no longer than the role that allowed it: a user who may no longer
maintain an environment keeps no firewall rule or database account there, however the
role was lost, and the history says why."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from environments import operations
from environments.models import (
    AccessEnd,
    ApiToken,
    DatabaseAccount,
    FirewallRule,
    Operation,
    OperationKind,
    Outcome,
    Project,
    ProjectMembership,
    ProjectRole,
)
from environments.refusals import OperationRefused
from tests.conftest import committing, run_worker
from tests.helpers import user_page_form


@pytest.fixture
def grants(environment, manager):
    """A firewall rule and a database account of the manager's, applied."""
    with committing():
        operations.enable_access(
            environment, manager, name="office", cidr="203.0.113.7/32", reason="support"
        )
    run_worker()
    with committing():
        operations.request_access(environment, manager, level="read_write", reason="support")
    run_worker()
    return FirewallRule.objects.get(), DatabaseAccount.objects.get()


def ended(grants, reason):
    for grant in grants:
        grant.refresh_from_db()
        assert grant.end_reason == reason
        assert grant.removed_at is not None  # the driver took it away
    removals = Operation.objects.filter(
        kind__in=[OperationKind.REMOVE_ACCESS, OperationKind.REVOKE_ACCESS]
    )
    assert removals.count() == 2
    assert all("role removed" in op.reason and op.outcome == Outcome.SUCCEEDED for op in removals)
    return True


def membership(manager):
    return ProjectMembership.objects.get(user=manager)


def test_deleting_the_membership_in_the_admin_ends_the_grants(client, superuser, manager, grants):
    client.force_login(superuser)
    url = reverse("admin:environments_projectmembership_delete", args=[membership(manager).pk])
    with committing():
        client.post(url, {"post": "yes"})
    run_worker()
    assert ended(grants, AccessEnd.ROLE_REMOVED)


def test_demoting_to_team_member_ends_the_grants(manager, grants):
    with committing():
        role = membership(manager)
        role.role = ProjectRole.MEMBER
        role.save()
    run_worker()
    assert ended(grants, AccessEnd.ROLE_REMOVED)


def test_removing_the_membership_on_the_project_page_ends_the_grants(
    client, superuser, project, manager, grants
):
    client.force_login(superuser)
    row = membership(manager)
    data = {
        "name": project.name,
        "slug": project.slug,
        "memberships-TOTAL_FORMS": 1,
        "memberships-INITIAL_FORMS": 1,
        "memberships-0-id": row.pk,
        "memberships-0-project": project.pk,
        "memberships-0-user": manager.pk,
        "memberships-0-role": row.role,
        "memberships-0-DELETE": "on",
    }
    with committing():
        response = client.post(
            reverse("admin:environments_project_change", args=[project.pk]), data
        )
    assert response.status_code == 302
    run_worker()
    assert ended(grants, AccessEnd.ROLE_REMOVED)


def test_a_demotion_in_another_project_leaves_the_grants_alone(manager, grants):
    other = Project.objects.create(name="Other", slug="other")
    with committing():
        role = ProjectMembership.objects.create(user=manager, project=other, role="owner")
        role.role = ProjectRole.MEMBER
        role.save()
    assert all(grant.__class__.objects.get(pk=grant.pk).ended_at is None for grant in grants)


def test_removing_the_membership_on_the_user_page_ends_the_grants(
    client, superuser, project, manager, grants
):
    client.force_login(superuser)
    data = user_page_form(client, manager)
    row = membership(manager)
    data.update(
        {
            "project_memberships-TOTAL_FORMS": 1,
            "project_memberships-INITIAL_FORMS": 1,
            "project_memberships-0-id": row.pk,
            "project_memberships-0-user": manager.pk,
            "project_memberships-0-project": project.pk,
            "project_memberships-0-role": row.role,
            "project_memberships-0-DELETE": "on",
        }
    )
    with committing():
        response = client.post(reverse("admin:auth_user_change", args=[manager.pk]), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    run_worker()
    assert ended(grants, AccessEnd.ROLE_REMOVED)


def test_a_superuser_made_ordinary_on_the_user_page_keeps_no_grant_outside_their_projects(
    client, superuser, other_environment
):
    root = superuser.__class__.objects.create_superuser(username="root2", password="x")
    with committing():
        operations.enable_access(
            other_environment, root, name="office", cidr="203.0.113.7/32", reason="x"
        )
    run_worker()
    client.force_login(superuser)
    data = user_page_form(client, root)  # is_superuser unticked: not sent
    data.pop("is_superuser", None)
    with committing():
        response = client.post(reverse("admin:auth_user_change", args=[root.pk]), data)
    assert response.status_code == 302
    run_worker()
    rule = FirewallRule.objects.get()
    assert rule.end_reason == AccessEnd.ROLE_REMOVED and rule.removed_at is not None


@pytest.mark.parametrize("who", ["member", "outsider"])
@pytest.mark.parametrize("end", [operations.remove_access, operations.revoke_access])
def test_ending_someone_elses_grant_directly_is_refused_and_changes_nothing(
    request, grants, who, end
):
    user = request.getfixturevalue(who)
    grant = grants[0] if end is operations.remove_access else grants[1]

    with pytest.raises(OperationRefused) as refused:
        end(grant, user)

    assert refused.value.code == OperationRefused.FORBIDDEN
    grant.refresh_from_db()
    assert grant.ended_at is None and grant.is_active


def test_a_grant_removed_while_being_applied_says_how_in_the_removals_history(environment, manager):
    operation = operations.enable_access(
        environment, manager, name="office", cidr="203.0.113.7/32", reason="support"
    )
    rule = FirewallRule.objects.get()
    operations.remove_access(rule, manager, via="API (ci token)")  # not applied yet

    operations.complete_operation(operation.pk)  # the apply settles: now the removal

    removal = Operation.objects.get(kind=OperationKind.REMOVE_ACCESS)
    assert removal.via == "API (ci token)"


def test_a_user_deactivated_in_plain_code_keeps_no_grant_and_no_token(manager, grants):
    """As a script, the shell or single sign-on would: no admin involved."""
    token = ApiToken.objects.create(
        user=manager, name="ci", digest="d" * 64, expires_at=timezone.now() + timedelta(days=1)
    )
    with committing():
        manager.is_active = False
        manager.save()
    run_worker()
    for grant in grants:
        grant.refresh_from_db()
        assert grant.end_reason == AccessEnd.DEACTIVATED
        assert grant.removed_at is not None
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_a_sign_in_saving_last_login_ends_nothing(manager, grants):
    with committing():
        manager.last_login = timezone.now()
        manager.save(update_fields=["last_login"])
    assert all(grant.ended_at is None for grant in FirewallRule.objects.all())


def test_the_sweeper_ends_grants_of_a_role_taken_away_without_a_signal(manager, grants):
    ProjectMembership.objects.filter(user=manager).update(role=ProjectRole.MEMBER)
    assert all(grant.ended_at is None for grant in FirewallRule.objects.all())
    with committing():
        operations.expire_access()
    run_worker()
    assert ended(grants, AccessEnd.ROLE_REMOVED)
