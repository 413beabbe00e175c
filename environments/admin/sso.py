"""Django admin for single sign-on: which provider group gives which role, and who is who
at the provider."""

from django.contrib import admin

from environments.admin.environments import ProjectSelect
from environments.models import ExternalIdentity, GroupRole


@admin.register(GroupRole)
class GroupRoleAdmin(ProjectSelect, admin.ModelAdmin):
    list_display = ["group", "project", "project_role", "environment_role"]
    list_filter = ["project", "project_role", "environment_role"]
    search_fields = ["group", "project__name"]
    autocomplete_fields = ["project"]
    fieldsets = [
        (
            None,
            {
                "fields": ["group", "project", "project_role", "environment_role"],
                "description": (
                    "Members of the group get the project role, or the environment role on "
                    "every environment of the project, at their next sign-in (choose one). "
                    "A role an admin assigned stands whatever the groups say."
                ),
            },
        )
    ]


@admin.register(ExternalIdentity)
class ExternalIdentityAdmin(admin.ModelAdmin):
    list_display = ["user", "issuer", "subject", "last_sign_in_at", "groups_read_at"]
    search_fields = ["user__username", "subject"]
    # The sealed refresh token is never shown.
    readonly_fields = [
        "user",
        "issuer",
        "subject",
        "groups",
        "created_at",
        "last_sign_in_at",
        "groups_read_at",
    ]

    def has_add_permission(self, request):
        return False
