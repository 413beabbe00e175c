"""Single sign-on: who someone is at the identity provider, and which of its groups
give which role."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from environments.models.choices import EnvironmentRoleKind, ProjectRole
from environments.models.projects import Project


class ExternalIdentity(models.Model):
    """A portal user as the identity provider knows them: the issuer and its `sub`, which
    never changes, unlike an e-mail address or a user name (never matched on)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="external_identities"
    )
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    # The groups of the last sign-in, as the provider named them.
    groups = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_sign_in_at = models.DateTimeField(null=True, blank=True)
    # When the provider last told the groups: a sign-in, or a refresh (sso/sync.py).
    groups_read_at = models.DateTimeField(null=True, blank=True)
    # The provider's refresh token (sealed, environments.crypto), kept only when the
    # portal asks for offline_access: the refresh reads the groups again with it.
    refresh_token_sealed = models.TextField(blank=True, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="one_user_per_identity")
        ]
        verbose_name_plural = "external identities"

    def __str__(self):
        return f"{self.user} ({self.subject} at {self.issuer})"


class SignInSession(models.Model):
    """A portal session that single sign-on opened, so that the refresh (sso/sync.py)
    knows who is signed in without reading every session. The issuer, ``sub`` and user
    are its identity's. Removed at sign-out, and by the refresh once the session is gone."""

    identity = models.ForeignKey(
        ExternalIdentity, on_delete=models.CASCADE, related_name="sign_in_sessions"
    )
    # Text: a signed-cookie session's key is the whole cookie.
    session_key = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.identity.user} since {self.created_at:%Y-%m-%d %H:%M}"


class GroupRole(models.Model):
    """A provider group gives a project role, or an environment role on every environment
    of the project (those added later too, from the next sign-in)."""

    group = models.CharField(
        max_length=255, help_text="The group as the provider's groups claim names it."
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="group_roles")
    project_role = models.CharField(max_length=20, choices=ProjectRole.choices, blank=True)
    environment_role = models.CharField(
        max_length=30, choices=EnvironmentRoleKind.choices, blank=True
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(project_role="") & ~models.Q(environment_role=""))
                | (~models.Q(project_role="") & models.Q(environment_role="")),
                name="group_role_gives_one_kind_of_role",
                violation_error_message="Choose a project role or an environment role (one).",
            ),
            models.UniqueConstraint(
                fields=["group", "project", "project_role", "environment_role"],
                name="one_group_role_per_kind",
            ),
        ]
        ordering = ["group", "project"]

    def __str__(self):
        role = self.get_project_role_display() or (
            f"{self.get_environment_role_display()} on its environments"
        )
        return f"{self.group}: {role} of {self.project}"
