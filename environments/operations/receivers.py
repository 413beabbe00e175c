"""What must follow a change to who someone is, however the change was made (admin, the
shell, a script, single sign-on): grants end with the role that allowed them, and a
deactivated user's tokens and calendar address stop. Connected in EnvironmentsConfig.ready.

QuerySet.update() sends no signals: the access sweeper (grants.expire_access) ends any
grant whose holder may no longer maintain its environment, as the backstop."""

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from environments.models import (
    AccessEnd,
    Environment,
    ProjectMembership,
    UserSettings,
    new_calendar_token,
)
from environments.operations.grants import end_access_of

User = get_user_model()


@receiver(post_save, sender=ProjectMembership, dispatch_uid="grants-follow-membership")
@receiver(post_delete, sender=ProjectMembership, dispatch_uid="grants-follow-membership-delete")
def membership_changed(sender, instance, **kwargs):
    """A membership removed or demoted below owner or manager ends the user's grants in
    the project."""
    with transaction.atomic():
        end_access_of(instance.user, AccessEnd.ROLE_REMOVED)


@receiver(pre_save, sender=User, dispatch_uid="user-remember-name")
def user_about_to_change(sender, instance, update_fields=None, **kwargs):
    if instance.pk and (update_fields is None or "username" in update_fields):
        old = User.objects.filter(pk=instance.pk).values_list("username", flat=True).first()
        instance.portal_renamed = old is not None and old != instance.get_username()


@receiver(post_save, sender=User, dispatch_uid="user-grants-and-tokens")
def user_changed(sender, instance, created, update_fields=None, **kwargs):
    if created or update_fields == frozenset({"last_login"}):
        return  # a sign-in changes nothing that grants or tokens follow
    with transaction.atomic():
        if not instance.is_active:
            # A deactivated user keeps no database account, firewall rule, API token or
            # calendar address: a later reactivation does not bring them back. The feed
            # already refuses an inactive user; a new token makes the old address one
            # that no longer exists, whatever happens to the user later.
            end_access_of(instance, AccessEnd.DEACTIVATED)
            instance.api_tokens.revoke()
            UserSettings.objects.filter(user=instance).update(calendar_token=new_calendar_token())
        else:
            # Nor a former superuser, where nothing else lets them maintain.
            end_access_of(instance, AccessEnd.ROLE_REMOVED)
        if getattr(instance, "portal_renamed", False):
            # Pages name people (history, roles, grants): a rename, rare, shows at once
            # on every environment's pages.
            Environment.objects.bump_revision()
            instance.portal_renamed = False
