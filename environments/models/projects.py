"""Projects and who holds which role: in a project, and on an environment."""

from django.conf import settings
from django.db import models

from environments.models.choices import (
    ENVIRONMENT_ROLE_HELP,
    PROJECT_ROLE_HELP,
    EnvironmentRoleKind,
    ProjectRole,
    RoleSource,
)
from environments.models.environments import Environment, ShownOnEnvironmentPages


class Project(models.Model):
    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        self.environments.bump_revision()  # their pages name the project


class ProjectMembership(ShownOnEnvironmentPages):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="project_memberships"
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=ProjectRole.choices, help_text=PROJECT_ROLE_HELP)
    # The identity provider changes and removes only the rows it made.
    source = models.CharField(
        max_length=10, choices=RoleSource.choices, default=RoleSource.ADMIN, editable=False
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "project"], name="one_membership_per_project")
        ]
        ordering = ["project", "user"]

    def __str__(self):
        return f"{self.user} - {self.get_role_display()} of {self.project}"

    def shown_on(self):
        # Who may maintain is on every page of the project's environments.
        return Environment.objects.filter(project_id=self.project_id)


class EnvironmentRole(ShownOnEnvironmentPages):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="environment_roles"
    )
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="roles")
    role = models.CharField(
        max_length=30, choices=EnvironmentRoleKind.choices, help_text=ENVIRONMENT_ROLE_HELP
    )
    source = models.CharField(
        max_length=10, choices=RoleSource.choices, default=RoleSource.ADMIN, editable=False
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "environment"], name="one_role_per_environment")
        ]
        ordering = ["environment", "user"]

    def __str__(self):
        return f"{self.user} - {self.get_role_display()} on {self.environment}"
