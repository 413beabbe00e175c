"""Django admin: where roles are assigned. History is read-only here."""

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db import models, transaction
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html

from environments.models import (
    ApiToken,
    DatabaseAccount,
    Environment,
    EnvironmentRole,
    FirewallRule,
    Operation,
    Project,
    ProjectMembership,
    Service,
)
from environments.operations import (
    delete_environment_role,
    delete_project_membership,
    save_environment_role,
    save_project_membership,
)
from environments.tokens import AdminTokenForm
from environments.tokens import set_secret as set_token_secret


class DeleteOneByOne:
    """Bulk deletion through each object's own delete(), which moves its environments'
    revision on (models.ShownOnEnvironmentPages)."""

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for obj in queryset:
                obj.delete()


#: Up to this many projects, a project is chosen from a plain select: every name at a
#: glance, picked without typing. Past it the select grows long and heavy, and the admin
#: searches instead (autocomplete).
PROJECT_SELECT_MAX = 100


class ProjectSelect:
    """A project from a plain select while there are few, by autocomplete past that."""

    def get_autocomplete_fields(self, request):
        fields = list(super().get_autocomplete_fields(request))
        if "project" in fields and Project.objects.count() <= PROJECT_SELECT_MAX:
            fields.remove("project")
        return fields


# --- Roles: every project membership and environment role given, changed or removed ---
# lands in the history of the environments it covers.


class RoleHistoryFormsetMixin:
    """Inline role formsets save each role through operations, which writes its history."""

    def save_formset(self, request, form, formset, change):
        if formset.model is EnvironmentRole:
            save, delete = save_environment_role, delete_environment_role
        elif formset.model is ProjectMembership:
            save, delete = save_project_membership, delete_project_membership
        else:
            return super().save_formset(request, form, formset, change)
        roles = formset.save(commit=False)
        for role in formset.deleted_objects:
            delete(role, request.user)
        for role in roles:
            save(role, request.user)
        formset.save_m2m()
        return None


class ProjectMembershipInline(admin.TabularInline):
    model = ProjectMembership
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(RoleHistoryFormsetMixin, admin.ModelAdmin):
    list_display = ["name", "slug"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [ProjectMembershipInline]


@admin.register(ProjectMembership)
class ProjectMembershipAdmin(ProjectSelect, admin.ModelAdmin):
    list_display = ["user", "project", "role", "source"]
    list_filter = ["role", "source", "project"]
    search_fields = ["user__username", "project__name"]
    autocomplete_fields = ["user", "project"]

    def save_model(self, request, obj, form, change):
        save_project_membership(obj, request.user)

    def delete_model(self, request, obj):
        delete_project_membership(obj, request.user)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for membership in queryset.select_related("user", "project"):
                delete_project_membership(membership, request.user)


#: A service's state and its facts are the worker's to record.
SERVICE_FACTS = ["state", "last_restarted_at", "checked_at", "check_detail"]


class ServiceInline(admin.TabularInline):
    model = Service
    extra = 0
    fields = ["kind", *SERVICE_FACTS]
    readonly_fields = SERVICE_FACTS


class EnvironmentRoleInline(admin.TabularInline):
    model = EnvironmentRole
    extra = 1
    autocomplete_fields = ["user"]


class UserProjectMembershipInline(ProjectSelect, admin.TabularInline):
    model = ProjectMembership
    extra = 1
    autocomplete_fields = ["project"]
    verbose_name = "project membership"


class UserEnvironmentRoleInline(admin.TabularInline):
    model = EnvironmentRole
    extra = 1
    autocomplete_fields = ["environment"]
    verbose_name = "environment role"


@admin.register(Environment)
class EnvironmentAdmin(RoleHistoryFormsetMixin, admin.ModelAdmin):
    list_display = ["name", "project", "tier", "type", "subscription", "deployment", "status"]
    list_filter = ["status", "tier", "type", "subscription", "deployment", "project"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    # The status changes only through Maintain operations.
    readonly_fields = ["status", "status_changed_at"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    inlines = [ServiceInline, EnvironmentRoleInline]

    def save_model(self, request, obj, form, change):
        # Only what the form changed: the status and its facts are the operations' own,
        # and a stale copy of them must never be written back.
        if change:
            obj.revision = models.F("revision") + 1  # its pages show what changed
            obj.save(update_fields=[*form.changed_data, "revision"])
        else:
            obj.save()


@admin.register(Service)
class ServiceAdmin(DeleteOneByOne, admin.ModelAdmin):
    list_display = ["environment", "kind", "state", "last_restarted_at", "checked_at"]
    list_filter = ["kind", "state", "environment__project"]
    search_fields = ["environment__name"]
    list_select_related = ["environment"]
    fields = ["environment", "kind", *SERVICE_FACTS]
    readonly_fields = SERVICE_FACTS


class EnvironmentRoleForm(forms.ModelForm):
    """A second role for a user on an environment is refused with a link to the one
    they have, which is where a change belongs."""

    class Meta:
        model = EnvironmentRole
        fields = ["user", "environment", "role"]

    def validate_unique(self):
        user, environment = self.cleaned_data.get("user"), self.cleaned_data.get("environment")
        existing = (
            EnvironmentRole.objects.filter(user=user, environment=environment)
            .exclude(pk=self.instance.pk)
            .first()
        )
        if existing is None:
            return super().validate_unique()
        url = reverse("admin:environments_environmentrole_change", args=[existing.pk])
        message = format_html(
            '{} already has a role on {}: {}. <a href="{}">Change that role</a> instead.',
            user,
            environment,
            existing.get_role_display(),
            url,
        )
        self.add_error(None, message)
        return None


@admin.register(EnvironmentRole)
class EnvironmentRoleAdmin(admin.ModelAdmin):
    form = EnvironmentRoleForm
    list_display = ["user", "environment", "role", "source"]
    list_filter = ["role", "source", "environment__project", "environment"]
    search_fields = ["user__username", "environment__name"]
    autocomplete_fields = ["user", "environment"]

    def save_model(self, request, obj, form, change):
        save_environment_role(obj, request.user)

    def delete_model(self, request, obj):
        delete_environment_role(obj, request.user)

    def delete_queryset(self, request, queryset):
        for role in queryset.select_related("user", "environment"):
            delete_environment_role(role, request.user)


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class PortalUserAdmin(RoleHistoryFormsetMixin, UserAdmin):
    """The user page also assigns project memberships and environment roles."""

    inlines = [*UserAdmin.inlines, UserProjectMembershipInline, UserEnvironmentRoleInline]
    list_filter = [*UserAdmin.list_filter, "environment_roles__role"]

    def delete_model(self, request, obj):
        with transaction.atomic():
            for role in obj.environment_roles.select_related("environment"):
                delete_environment_role(role, request.user)
            for membership in obj.project_memberships.select_related("project"):
                delete_project_membership(membership, request.user)
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for user in queryset:
            self.delete_model(request, user)


class ReadOnly:
    """Written by the portal alone (history, grants, deliveries): here only read."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyAdmin(ReadOnly, admin.ModelAdmin):
    pass


@admin.register(Operation)
class OperationAdmin(ReadOnlyAdmin):
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


class AccessGrantAdmin(ReadOnlyAdmin):
    """Grants are made and ended in the portal, where history is written; here they
    are only read. The password of an account never appears."""

    list_filter = [
        "end_reason",
        ("removal_blocked", admin.EmptyFieldListFilter),
        "environment__project",
    ]
    list_select_related = ["environment", "requested_by"]
    date_hierarchy = "created_at"

    @admin.display(description="State")
    def state(self, obj):
        return obj.state_text


@admin.register(FirewallRule)
class FirewallRuleAdmin(AccessGrantAdmin):
    list_display = ["name", "cidr", "environment", "requested_by", "expires_at", "state"]
    search_fields = ["name", "cidr", "environment__name", "requested_by__username"]


@admin.register(DatabaseAccount)
class DatabaseAccountAdmin(AccessGrantAdmin):
    list_display = ["username", "level", "environment", "requested_by", "expires_at", "state"]
    search_fields = ["username", "environment__name", "requested_by__username"]
    exclude = ["password_encrypted"]


# --- API tokens: made here for a user (the secret is shown once), revoked, never edited --


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    form = AdminTokenForm
    list_display = [
        "name",
        "prefix",
        "user",
        "scope",
        "expires_at",
        "last_used_at",
        "last_used_from",
        "revoked_at",
    ]
    list_filter = ["scope"]
    search_fields = ["name", "prefix", "user__username"]
    list_select_related = ["user"]
    autocomplete_fields = ["user"]
    actions = ["revoke"]

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        form.maker = request.user  # a class of this request's own (modelform_factory)
        return form

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        if not request.user.is_superuser:
            # They make tokens for themselves only (tokens.refusal_to_make_token).
            initial.setdefault("user", request.user.pk)
        return initial

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return [
            "user",
            "name",
            "scope",
            "prefix",
            "created_at",
            "expires_at",
            "revoked_at",
            "last_used_at",
            "last_used_from",
        ]

    def save_model(self, request, obj, form, change):
        if not change:
            request.new_token_secret = set_token_secret(obj)
        super().save_model(request, obj, form, change)

    def response_add(self, request, obj, post_url_continue=None):
        """The secret, once, on the answer to the POST that made it: never in a message,
        which would keep it in a cookie or the session."""
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "token": obj,
            "secret": request.new_token_secret,
            "title": "API token made",
        }
        response = render(request, "tokens/admin_created.html", context)
        add_never_cache_headers(response)
        return response

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke(self, request, queryset):
        count = queryset.revoke()
        self.message_user(request, f"{count} token(s) revoked.")
