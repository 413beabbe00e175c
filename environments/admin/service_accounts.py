"""Service accounts: users for scripts and pipelines, made here. Their roles are
assigned on their user page, as everyone's; their tokens are made under API tokens, or
through the API by a project owner of their projects (docs/api.md)."""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from environments.models import ServiceAccount

User = get_user_model()


class NewServiceAccountForm(forms.ModelForm):
    """A new service account: its user, with no password (it never signs in), and what
    uses it."""

    username = forms.CharField(
        label="Name",
        max_length=150,
        validators=[UnicodeUsernameValidator()],
        help_text="How the history names it, e.g. “nightly-restarts”.",
    )

    class Meta:
        model = ServiceAccount
        fields = ["username", "description"]

    def clean_username(self):
        username = self.cleaned_data["username"]
        if User.objects.filter(username__iexact=username).exists():
            raise forms.ValidationError("A user of that name exists already.")
        return username

    def save(self, commit=True):
        user = User(username=self.cleaned_data["username"])
        user.set_unusable_password()
        user.save()
        self.instance.user = user
        return super().save(commit)


@admin.register(ServiceAccount)
class ServiceAccountAdmin(admin.ModelAdmin):
    list_display = ["user", "description", "roles", "active_tokens", "created_at"]
    search_fields = ["user__username", "description"]
    list_select_related = ["user"]
    readonly_fields = ["user", "roles", "created_at"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = NewServiceAccountForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["username", "description"]
        return ["user", "description", "roles", "created_at"]

    def response_add(self, request, obj, post_url_continue=None):
        """On to its user page, where its roles are given."""
        self.message_user(
            request,
            f"Service account {obj.user} made. Give it project memberships and environment "
            "roles here; make its tokens under API tokens, or through the API.",
            messages.SUCCESS,
        )
        return redirect("admin:auth_user_change", obj.user.pk)

    @admin.display(description="Roles")
    def roles(self, obj):
        memberships = obj.user.project_memberships.select_related("project")
        roles = obj.user.environment_roles.select_related("environment")
        items = [str(m) for m in memberships] + [str(r) for r in roles]
        link = format_html(
            '<a href="{}">Assign roles on its user page</a>',
            reverse("admin:auth_user_change", args=[obj.user.pk]),
        )
        if not items:
            return format_html("None yet. {}", link)
        listed = format_html_join("", "<li>{}</li>", ((item,) for item in items))
        return format_html("<ul>{}</ul>{}", listed, link)

    @admin.display(description="Active tokens")
    def active_tokens(self, obj):
        return obj.user.api_tokens.usable().count()
