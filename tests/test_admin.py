"""Django admin: roles are assigned there, each change lands in history; history is read-only."""

import csv
import io
import re

import pytest
from django.test import Client
from django.urls import reverse

from environments.admin import environments as admin_environments
from environments.models import (
    EnvironmentRole,
    EnvironmentRoleKind,
    Operation,
    OperationKind,
    Outcome,
    ProjectMembership,
    ProjectRole,
)
from tests.conftest import make_environment, make_user
from tests.helpers import environment_form, user_page_form


@pytest.fixture
def as_admin(client, superuser):
    client.force_login(superuser)
    return client


def role_history(environment):
    return list(
        Operation.objects.filter(
            environment=environment,
            kind__in=[
                OperationKind.GRANT_ROLE,
                OperationKind.CHANGE_ROLE,
                OperationKind.REMOVE_ROLE,
            ],
        )
        .order_by("started_at", "id")
        .values_list("kind", "target", "requested_by__username", "outcome")
    )


def project_role_history(environment):
    return list(
        Operation.objects.filter(
            environment=environment,
            kind__in=[
                OperationKind.GRANT_PROJECT_ROLE,
                OperationKind.CHANGE_PROJECT_ROLE,
                OperationKind.REMOVE_PROJECT_ROLE,
            ],
        )
        .order_by("started_at", "id")
        .values_list("kind", "target", "requested_by__username", "outcome")
    )


def test_granting_a_role_in_admin_is_recorded_in_history(as_admin, environment):
    maya = make_user("maya")
    response = as_admin.post(
        reverse("admin:environments_environmentrole_add"),
        {"user": maya.pk, "environment": environment.pk, "role": "maintenance_mode_user"},
    )
    assert response.status_code == 302
    assert role_history(environment) == [
        (OperationKind.GRANT_ROLE, "maya, Maintenance mode user", "root", Outcome.SUCCEEDED)
    ]


def test_changing_and_removing_a_role_are_recorded(as_admin, environment):
    maya = make_user("maya")
    role = EnvironmentRole.objects.create(
        user=maya, environment=environment, role=EnvironmentRoleKind.USER
    )
    as_admin.post(
        reverse("admin:environments_environmentrole_change", args=[role.pk]),
        {"user": maya.pk, "environment": environment.pk, "role": "system_administrator"},
    )
    as_admin.post(
        reverse("admin:environments_environmentrole_delete", args=[role.pk]), {"post": "yes"}
    )
    assert not EnvironmentRole.objects.exists()
    assert role_history(environment) == [
        (OperationKind.CHANGE_ROLE, "maya, User → System administrator", "root", "succeeded"),
        (OperationKind.REMOVE_ROLE, "maya, System administrator", "root", "succeeded"),
    ]


def test_bulk_delete_of_roles_records_each_removal(as_admin, environment):
    for name in ("ann", "ben"):
        EnvironmentRole.objects.create(
            user=make_user(name), environment=environment, role=EnvironmentRoleKind.USER
        )
    as_admin.post(
        reverse("admin:environments_environmentrole_changelist"),
        {
            "action": "delete_selected",
            "_selected_action": list(EnvironmentRole.objects.values_list("pk", flat=True)),
            "post": "yes",
        },
    )
    assert not EnvironmentRole.objects.exists()
    assert [row[0] for row in role_history(environment)] == [OperationKind.REMOVE_ROLE] * 2


def test_roles_assigned_inline_on_the_environment_page_are_recorded(as_admin, environment):
    maya = make_user("maya")
    url = reverse("admin:environments_environment_change", args=[environment.pk])
    services = list(environment.services.all())

    response = as_admin.post(
        url,
        environment_form(
            environment, [{"user": maya.pk, "role": "maintenance_mode_user"}], services
        ),
    )
    assert response.status_code == 302, response.context and response.context["errors"]
    role = EnvironmentRole.objects.get()

    as_admin.post(
        url,
        environment_form(
            environment,
            [{"id": role.pk, "user": maya.pk, "role": "maintenance_mode_user", "DELETE": "on"}],
            services,
        ),
    )
    assert not EnvironmentRole.objects.exists()
    assert [row[:2] for row in role_history(environment)] == [
        (OperationKind.GRANT_ROLE, "maya, Maintenance mode user"),
        (OperationKind.REMOVE_ROLE, "maya, Maintenance mode user"),
    ]


def test_the_user_page_assigns_environment_roles(as_admin, environment):
    maya = make_user("maya")
    body = as_admin.get(reverse("admin:auth_user_change", args=[maya.pk])).content.decode()
    assert "environment_roles-TOTAL_FORMS" in body


def test_roles_can_be_filtered_by_role(as_admin, environment):
    EnvironmentRole.objects.create(
        user=make_user("maya"), environment=environment, role="maintenance_mode_user"
    )
    EnvironmentRole.objects.create(user=make_user("ann"), environment=environment, role="user")
    response = as_admin.get(
        reverse("admin:environments_environmentrole_changelist"),
        {"role": "maintenance_mode_user"},
    )
    assert response.context["cl"].result_count == 1


def test_history_is_read_only_in_admin(as_admin, environment, manager, start):
    operation = start(OperationKind.ENABLE_MAINTENANCE, environment, manager)
    assert as_admin.get(reverse("admin:environments_operation_add")).status_code == 403
    change = reverse("admin:environments_operation_change", args=[operation.pk])
    assert as_admin.get(change).status_code == 200  # view only
    assert as_admin.post(change, {"reason": "rewritten"}).status_code == 403
    delete = reverse("admin:environments_operation_delete", args=[operation.pk])
    assert as_admin.post(delete, {"post": "yes"}).status_code == 403
    operation.refresh_from_db()
    assert operation.reason == ""
    listing = as_admin.get(reverse("admin:environments_operation_changelist"))
    assert listing.status_code == 200 and "Enable Maintenance mode" in listing.content.decode()


def test_deleting_a_user_in_admin_records_the_removal_of_their_roles(as_admin, environment):
    maya = make_user("maya")
    EnvironmentRole.objects.create(
        user=maya, environment=environment, role=EnvironmentRoleKind.MAINTENANCE_MODE_USER
    )
    response = as_admin.post(reverse("admin:auth_user_delete", args=[maya.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not EnvironmentRole.objects.exists()
    assert role_history(environment) == [
        (OperationKind.REMOVE_ROLE, "maya, Maintenance mode user", "root", "succeeded")
    ]


def test_deactivating_a_user_ends_their_access_grants(as_admin, environment, manager):
    from environments.models import AccessEnd, DatabaseAccount
    from environments.operations import request_access
    from tests.conftest import committing, run_worker

    with committing():
        request_access(environment, manager, level="read", reason="investigate")
    run_worker()
    data = user_page_form(as_admin, manager)
    del data["is_active"]  # an unticked box is not sent
    with committing():
        response = as_admin.post(reverse("admin:auth_user_change", args=[manager.pk]), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    run_worker()

    account = DatabaseAccount.objects.get()
    assert account.end_reason == AccessEnd.DEACTIVATED and account.removed_at is not None
    assert Operation.objects.filter(kind=OperationKind.REVOKE_ACCESS, outcome="succeeded").exists()


def test_a_user_deactivated_in_admin_keeps_no_token_when_reactivated(as_admin, manager):
    from tests.api_clients import API, token_for

    token, secret = token_for(manager)
    data = user_page_form(as_admin, manager)
    del data["is_active"]  # an unticked box is not sent
    assert (
        as_admin.post(reverse("admin:auth_user_change", args=[manager.pk]), data).status_code == 302
    )
    data["is_active"] = "on"
    assert (
        as_admin.post(reverse("admin:auth_user_change", args=[manager.pk]), data).status_code == 302
    )

    manager.refresh_from_db()
    token.refresh_from_db()
    assert manager.is_active and token.revoked_at is not None
    api = Client(headers={"Authorization": f"Bearer {secret}"})
    assert api.get(f"{API}/environments").status_code == 401


def test_promoting_and_demoting_a_member_is_recorded_on_every_environment_of_the_project(
    as_admin, environment, project, member
):
    production = make_environment(project, name="Production", slug="prod", type="production")
    membership = ProjectMembership.objects.get(user=member)
    url = reverse("admin:environments_projectmembership_change", args=[membership.pk])
    for role in (ProjectRole.MANAGER, ProjectRole.MEMBER):
        response = as_admin.post(url, {"user": member.pk, "project": project.pk, "role": role})
        assert response.status_code == 302

    changed = OperationKind.CHANGE_PROJECT_ROLE
    expected = [
        (changed, "tom, Project team member → Environment manager", "root", "succeeded"),
        (changed, "tom, Environment manager → Project team member", "root", "succeeded"),
    ]
    assert project_role_history(environment) == expected
    assert project_role_history(production) == expected
    page = as_admin.get(reverse("history"), {"type": "roles"}).content.decode()
    assert page.count("Project role changed: tom, Project team member → Environment manager") == 2
    export = as_admin.get(reverse("history-csv"), {"type": "all"})
    rows = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode())))
    demoted = "Project role changed: tom, Environment manager → Project team member"
    assert [cell for row in rows for cell in row].count(demoted) == 2


def test_saving_a_membership_unchanged_writes_no_history(as_admin, project, environment, member):
    membership = ProjectMembership.objects.get(user=member)
    as_admin.post(
        reverse("admin:environments_projectmembership_change", args=[membership.pk]),
        {"user": member.pk, "project": project.pk, "role": ProjectRole.MEMBER},
    )
    assert project_role_history(environment) == []


def test_memberships_given_and_removed_are_recorded_from_every_admin_page(
    as_admin, project, environment
):
    ann, ben, cid = make_user("ann"), make_user("ben"), make_user("cid")
    as_admin.post(
        reverse("admin:environments_projectmembership_add"),
        {"user": ann.pk, "project": project.pk, "role": ProjectRole.OWNER},
    )
    project_page = reverse("admin:environments_project_change", args=[project.pk])
    response = as_admin.post(
        project_page,
        {
            "name": project.name,
            "slug": project.slug,
            "memberships-TOTAL_FORMS": 1,
            "memberships-INITIAL_FORMS": 0,
            "memberships-0-user": ben.pk,
            "memberships-0-role": ProjectRole.MANAGER,
        },
    )
    assert response.status_code == 302, response.context and response.context["errors"]
    data = user_page_form(as_admin, cid)
    data.update(
        {
            "project_memberships-TOTAL_FORMS": 1,
            "project_memberships-0-project": project.pk,
            "project_memberships-0-role": ProjectRole.MEMBER,
        }
    )
    response = as_admin.post(reverse("admin:auth_user_change", args=[cid.pk]), data)
    assert response.status_code == 302, response.context and response.context["errors"]
    as_admin.post(
        reverse("admin:environments_projectmembership_changelist"),
        {
            "action": "delete_selected",
            "_selected_action": [ProjectMembership.objects.get(user=ann).pk],
            "post": "yes",
        },
    )
    as_admin.post(reverse("admin:auth_user_delete", args=[ben.pk]), {"post": "yes"})

    assert [row[:2] for row in project_role_history(environment)] == [
        (OperationKind.GRANT_PROJECT_ROLE, "ann, Project owner"),
        (OperationKind.GRANT_PROJECT_ROLE, "ben, Environment manager"),
        (OperationKind.GRANT_PROJECT_ROLE, "cid, Project team member"),
        (OperationKind.REMOVE_PROJECT_ROLE, "ann, Project owner"),
        (OperationKind.REMOVE_PROJECT_ROLE, "ben, Environment manager"),
    ]
    assert list(ProjectMembership.objects.values_list("user__username", flat=True)) == ["cid"]


def test_the_role_forms_say_what_each_role_allows(as_admin, project, environment):
    project_page = as_admin.get(reverse("admin:environments_project_change", args=[project.pk]))
    environment_page = as_admin.get(
        reverse("admin:environments_environment_change", args=[environment.pk])
    )

    # Django admin shows a field's help in its inline's column head.
    assert "Decides who may maintain." in project_page.content.decode()
    assert "Decides who may sign in to the environment." in environment_page.content.decode()


def project_select(page):
    return re.search(r'<select name="project"[^>]*>', page.content.decode()).group(0)


def test_projects_are_a_plain_select_while_there_are_few(as_admin, project, monkeypatch):
    url = reverse("admin:environments_projectmembership_add")

    assert "admin-autocomplete" not in project_select(as_admin.get(url))

    monkeypatch.setattr(admin_environments, "PROJECT_SELECT_MAX", 0)
    assert "admin-autocomplete" in project_select(as_admin.get(url))
