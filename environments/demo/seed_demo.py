"""Demo data: a project with eligible and ineligible environments, and one user per role.

Idempotent: running it again changes nothing but what it owns (and the users'
password, when DEMO_PASSWORD is given). It owns the Local sandbox's supervisord
configuration and its entry in PORTAL_DRIVERS_FILE too: the command driver restarts
that environment's services, which run_portal starts under supervisord.
"""

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from environments.demo.local_sandbox import supervisord as local_sandbox
from environments.models import (
    Deployment,
    Environment,
    EnvironmentRole,
    EnvironmentRoleKind,
    EnvironmentType,
    Project,
    ProjectMembership,
    ProjectRole,
    Service,
    ServiceKind,
    Subscription,
)
from environments.operations import record_role_change

SANDBOX = dict(
    type=EnvironmentType.SANDBOX,
    subscription=Subscription.MICROSOFT,
    deployment=Deployment.SELF_SERVICE,
)

PROJECTS = {
    ("Contoso implementation", "contoso"): [
        dict(name="Demo sandbox", slug="demo-sandbox", tier=2, **SANDBOX),
        dict(name="UAT sandbox", slug="uat-sandbox", tier=3, **SANDBOX),
        dict(name="Performance test", slug="perf-test", tier=5, **SANDBOX),
        dict(name="Developer box", slug="dev-box", tier=1, **SANDBOX),
        # Its services are real processes under supervisord (environments/local_sandbox).
        dict(name="Local sandbox", slug=local_sandbox.SLUG, tier=2, **SANDBOX),
        dict(
            name="Contoso production",
            slug="contoso-prod",
            tier=5,
            type=EnvironmentType.PRODUCTION,
            subscription=Subscription.MICROSOFT,
            deployment=Deployment.SELF_SERVICE,
        ),
        dict(
            name="Legacy sandbox",
            slug="legacy-sandbox",
            tier=2,
            type=EnvironmentType.SANDBOX,
            subscription=Subscription.CUSTOMER,
            deployment=Deployment.LEGACY,
        ),
    ],
    ("Fabrikam rollout", "fabrikam"): [
        dict(name="Fabrikam sandbox", slug="fabrikam-sandbox", tier=2, **SANDBOX),
    ],
}

# username: (superuser, {project slug: role}, environment role on Contoso environments)
USERS = {
    "admin": (True, {}, EnvironmentRoleKind.SYSTEM_ADMINISTRATOR),
    "owner": (False, {"contoso": ProjectRole.OWNER}, EnvironmentRoleKind.SYSTEM_ADMINISTRATOR),
    "manager": (False, {"contoso": ProjectRole.MANAGER}, EnvironmentRoleKind.SYSTEM_ADMINISTRATOR),
    "member": (False, {"contoso": ProjectRole.MEMBER}, EnvironmentRoleKind.USER),
    "maint": (False, {"contoso": ProjectRole.MEMBER}, EnvironmentRoleKind.MAINTENANCE_MODE_USER),
    "outsider": (False, {"fabrikam": ProjectRole.OWNER}, None),
}


def _assign_role(user, environment, role):
    """Give the role, and write its history row as the admin would (by "system")."""
    current = EnvironmentRole.objects.filter(user=user, environment=environment).first()
    if current and current.role == role:
        return
    EnvironmentRole.objects.update_or_create(
        user=user, environment=environment, defaults={"role": role}
    )
    record_role_change(
        environment, None, user, role, granted=True, previous_role=current.role if current else None
    )


class Command(BaseCommand):
    help = "Create (or bring back) the demo project, environments and users."

    @transaction.atomic
    def handle(self, *args, **options):
        projects, contoso_environments = self._environments()
        password = os.environ.get("DEMO_PASSWORD") or None
        created_password = None
        User = get_user_model()
        for username, (superuser, memberships, environment_role) in USERS.items():
            user, created = User.objects.get_or_create(
                username=username,
                # An address, so that the demo's mails show on the console.
                defaults={
                    "is_superuser": superuser,
                    "is_staff": superuser,
                    "email": f"{username}@example.com",
                },
            )
            if created or password:
                if password is None:
                    created_password = created_password or secrets.token_urlsafe(12)
                user.set_password(password or created_password)
                user.save()
            for project_slug, role in memberships.items():
                ProjectMembership.objects.update_or_create(
                    user=user, project=projects[project_slug], defaults={"role": role}
                )
            if environment_role:
                for environment in contoso_environments:
                    _assign_role(user, environment, environment_role)
        self.stdout.write(
            f"Demo data ready: {Environment.objects.count()} environments, "
            f"users {', '.join(USERS)}."
        )
        self._local_sandbox()
        if created_password:
            self.stdout.write(f"Password of the new demo users (shown once): {created_password}")
        elif password:
            self.stdout.write("Demo users' password: the value of DEMO_PASSWORD.")

    def _environments(self):
        projects = {}
        contoso = []
        for (project_name, project_slug), environments in PROJECTS.items():
            project, _ = Project.objects.get_or_create(
                slug=project_slug, defaults={"name": project_name}
            )
            projects[project_slug] = project
            for fields in environments:
                slug = fields["slug"]
                defaults = {k: v for k, v in fields.items() if k != "slug"}
                defaults.update(
                    project=project,
                    url=self._url(slug),
                    database_server="local",
                    database_name=slug.replace("-", "_"),
                )
                environment, _ = Environment.objects.get_or_create(slug=slug, defaults=defaults)
                for kind in ServiceKind.values:
                    Service.objects.get_or_create(environment=environment, kind=kind)
                if project_slug == "contoso":
                    contoso.append(environment)
        return projects, contoso

    def _url(self, slug):
        if slug == local_sandbox.SLUG:
            return local_sandbox.LocalSandbox.from_settings().url("aos")
        return f"https://{slug}.sandbox.operations.example.com/"

    def _local_sandbox(self):
        """Point the Local sandbox at the command driver, acting through supervisorctl."""
        sandbox = local_sandbox.LocalSandbox.from_settings()
        entry = sandbox.install()
        if entry is None:
            self.stdout.write(
                f"Local sandbox: supervisord configuration {sandbox.conf_path}, driver entry "
                f"in {settings.PORTAL_DRIVERS_FILE}; run_portal starts its services."
            )
        else:
            self.stdout.write(
                f"Local sandbox: {settings.PORTAL_DRIVERS_FILE} is TOML, which the portal does "
                f"not edit; `manage.py local_sandbox` prints the entry to add."
            )
