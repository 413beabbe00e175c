"""seed_demo: the demo project, eligible and ineligible environments, one user per role."""

from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command

from environments.models import (
    Environment,
    EnvironmentRole,
    EnvironmentRoleKind,
    Operation,
    ProjectMembership,
    ProjectRole,
)

pytestmark = pytest.mark.django_db


def seed(monkeypatch, tmp_path, password=None):
    monkeypatch.setattr("django.conf.settings.PORTAL_DRIVERS_FILE", tmp_path / "drivers.json")
    if password:
        monkeypatch.setenv("DEMO_PASSWORD", password)
    else:
        monkeypatch.delenv("DEMO_PASSWORD", raising=False)
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def counts():
    return (
        Environment.objects.count(),
        get_user_model().objects.count(),
        ProjectMembership.objects.count(),
        EnvironmentRole.objects.count(),
    )


def test_seed_demo_is_idempotent_and_prints_a_random_password_once(monkeypatch, tmp_path):
    first = seed(monkeypatch, tmp_path)
    before = counts()
    history = Operation.objects.count()
    password = first.split("(shown once): ")[1].split()[0]
    assert authenticate(username="manager", password=password)

    second = seed(monkeypatch, tmp_path)

    assert counts() == before
    assert "shown once" not in second
    assert authenticate(username="manager", password=password), "password must not change"
    assert Operation.objects.count() == history, "a second run changes no role"


def test_roles_the_seed_gives_are_in_the_history(monkeypatch, tmp_path):
    seed(monkeypatch, tmp_path)
    rows = Operation.objects.filter(kind="grant_role", requested_by__isnull=True)
    assert rows.count() == EnvironmentRole.objects.count()
    assert rows.filter(target="maint, Maintenance mode user").exists()


def test_demo_password_comes_from_the_environment(monkeypatch, tmp_path):
    output = seed(monkeypatch, tmp_path, password="demo-pass-123")
    assert "demo-pass-123" not in output
    for username in ["admin", "owner", "manager", "member", "maint", "outsider"]:
        assert authenticate(username=username, password="demo-pass-123"), username


def test_demo_has_eligible_and_ineligible_environments(monkeypatch, tmp_path):
    seed(monkeypatch, tmp_path)
    eligible = {e.slug for e in Environment.objects.all() if e.is_sandbox_eligible()}
    ineligible = {e.slug for e in Environment.objects.all() if not e.is_sandbox_eligible()}
    assert {"demo-sandbox", "uat-sandbox", "local-sandbox"} <= eligible
    assert {"dev-box", "contoso-prod", "legacy-sandbox"} <= ineligible


def test_demo_users_have_their_roles(monkeypatch, tmp_path):
    seed(monkeypatch, tmp_path)
    User = get_user_model()
    assert User.objects.get(username="admin").is_superuser
    role = {m.user.username: m.role for m in ProjectMembership.objects.select_related("user")}
    assert role["owner"] == ProjectRole.OWNER
    assert role["manager"] == ProjectRole.MANAGER
    assert role["member"] == ProjectRole.MEMBER
    maint_roles = set(
        EnvironmentRole.objects.filter(user__username="maint").values_list("role", flat=True)
    )
    assert maint_roles == {EnvironmentRoleKind.MAINTENANCE_MODE_USER}
    outsider_projects = set(
        ProjectMembership.objects.filter(user__username="outsider").values_list(
            "project__slug", flat=True
        )
    )
    assert outsider_projects == {"fabrikam"}
