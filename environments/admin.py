"""Django admin: where roles are assigned. History is read-only here."""

from django.contrib import admin

from environments.models import (
    Environment,
    EnvironmentRole,
    Operation,
    Project,
    ProjectMembership,
    Service,
)


class ProjectMembershipInline(admin.TabularInline):
    model = ProjectMembership
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "slug"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [ProjectMembershipInline]


@admin.register(ProjectMembership)
class ProjectMembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "project", "role"]
    list_filter = ["role", "project"]
    search_fields = ["user__username", "project__name"]
    autocomplete_fields = ["user", "project"]


class ServiceInline(admin.TabularInline):
    model = Service
    extra = 0
    readonly_fields = ["state", "last_restarted_at"]


class EnvironmentRoleInline(admin.TabularInline):
    model = EnvironmentRole
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "tier", "type", "subscription", "deployment", "status"]
    list_filter = ["status", "tier", "type", "subscription", "deployment", "project"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    # The status changes only through Maintain operations.
    readonly_fields = ["status", "status_changed_at"]
    inlines = [ServiceInline, EnvironmentRoleInline]


@admin.register(EnvironmentRole)
class EnvironmentRoleAdmin(admin.ModelAdmin):
    list_display = ["user", "environment", "role"]
    list_filter = ["role", "environment__project", "environment"]
    search_fields = ["user__username", "environment__name"]
    autocomplete_fields = ["user", "environment"]


@admin.register(Operation)
class OperationAdmin(admin.ModelAdmin):
    list_display = [
        "started_at",
        "environment",
        "activity",
        "outcome",
        "status_before",
        "status_after",
        "requested_by",
    ]
    list_filter = ["outcome", "kind", "environment__project"]
    search_fields = ["activity_id", "environment__name", "requested_by__username", "reason"]
    list_select_related = ["environment", "service", "requested_by"]
    date_hierarchy = "started_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
