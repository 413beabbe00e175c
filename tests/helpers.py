"""Helpers that more than one test module uses and that are not fixtures."""

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from environments.models import Operation, OperationKind, Outcome, Status


def add_history(environment, user, count, *, start=None, **fields):
    """Write finished history rows directly, as bulk data (oldest first)."""
    start = start or timezone.now() - timedelta(days=1)
    rows = [
        Operation(
            environment=environment,
            kind=fields.get("kind", OperationKind.RESTART_SERVICE),
            action=fields.get("kind", OperationKind.RESTART_SERVICE),
            service=environment.services.get(kind="aos"),
            requested_by=user,
            reason=fields.get("reason", ""),
            started_at=start + timedelta(seconds=i),
            finished_at=start + timedelta(seconds=i + 5),
            deadline=start + timedelta(seconds=i + 300),
            outcome=fields.get("outcome", Outcome.SUCCEEDED),
            status_before=Status.DEPLOYED,
            status_after=Status.DEPLOYED,
            return_status=Status.DEPLOYED,
        )
        for i in range(count)
    ]
    return Operation.objects.bulk_create(rows)


def environment_form(environment, roles, services):
    data = {
        "name": environment.name,
        "slug": environment.slug,
        "project": environment.project_id,
        "tier": environment.tier,
        "type": environment.type,
        "subscription": environment.subscription,
        "deployment": environment.deployment,
        "url": environment.url,
        "database_server": environment.database_server,
        "database_name": environment.database_name,
        "services-TOTAL_FORMS": len(services),
        "services-INITIAL_FORMS": len(services),
        "roles-TOTAL_FORMS": len(roles),
        "roles-INITIAL_FORMS": sum(1 for role in roles if role.get("id")),
    }
    for i, service in enumerate(services):
        data.update(
            {
                f"services-{i}-id": service.pk,
                f"services-{i}-environment": environment.pk,
                f"services-{i}-kind": service.kind,
            }
        )
    for i, role in enumerate(roles):
        data.update({f"roles-{i}-{key}": value for key, value in role.items()})
    return data


def user_page_form(as_admin, user):
    """What the admin's user page posts back unchanged (its inlines empty)."""
    page = as_admin.get(reverse("admin:auth_user_change", args=[user.pk]))
    form = page.context["adminform"].form
    data = {
        key: value
        for key, value in form.initial.items()
        if key in form.fields
        and value is not None
        and value is not False
        and key not in ("groups", "user_permissions", "password")
    }
    data.update({"last_login_0": "", "last_login_1": ""})
    data["date_joined_0"], data["date_joined_1"] = user.date_joined.strftime(
        "%Y-%m-%d %H:%M:%S"
    ).split()
    for prefix in ("project_memberships", "environment_roles"):
        data.update({f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0})
    return data
