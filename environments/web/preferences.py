"""The user's own settings: their time zone, the mails they get, and the secret address
of their calendar feeds."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from environments.models import (
    NotificationKind,
    NotificationOptOut,
    UserSettings,
    new_calendar_token,
)
from environments.time_zones import browser_zone_name, remember_choice, zone_names


class SettingsForm(forms.Form):
    time_zone = forms.ChoiceField(
        label="Time zone",
        required=False,
        help_text="Times are shown, and entered, in this time zone.",
    )
    mails = forms.MultipleChoiceField(
        label="Send me mail when",
        required=False,
        choices=NotificationKind.choices,
        widget=forms.CheckboxSelectMultiple,
    )

    def __init__(self, *args, detected="", **kwargs):
        super().__init__(*args, **kwargs)
        browser = f"The browser's ({detected})" if detected else "The browser's"
        self.fields["time_zone"].choices = [("", browser)] + [
            (name, name) for name in sorted(zone_names())
        ]


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def user_settings(request):
    own, _ = UserSettings.objects.get_or_create(user=request.user)
    opted_out = set(request.user.notification_opt_outs.values_list("kind", flat=True))
    detected = browser_zone_name(request)
    initial = {
        "time_zone": own.time_zone,
        "mails": [kind for kind in NotificationKind.values if kind not in opted_out],
    }
    if request.method == "POST" and "new_calendar_address" in request.POST:
        own.calendar_token = new_calendar_token()
        own.save(update_fields=["calendar_token"])
        messages.success(request, "Your calendar address is new: the old one no longer works.")
        return redirect("user-settings")
    form = SettingsForm(
        request.POST if request.method == "POST" else None, initial=initial, detected=detected
    )
    if request.method == "POST" and form.is_valid():
        wanted = set(form.cleaned_data["mails"])
        with transaction.atomic():
            own.time_zone = form.cleaned_data["time_zone"]
            own.save(update_fields=["time_zone"])
            request.user.notification_opt_outs.exclude(
                kind__in=set(NotificationKind.values) - wanted
            ).delete()
            NotificationOptOut.objects.bulk_create(
                [
                    NotificationOptOut(user=request.user, kind=kind)
                    for kind in set(NotificationKind.values) - wanted - opted_out
                ]
            )
        remember_choice(request, own.time_zone)
        messages.success(request, "Your settings are saved.")
        return redirect("user-settings")
    context = {
        "form": form,
        "own": own,
        "current_zone": timezone.get_current_timezone_name(),
        # Each environment's own address is on its Maintenance windows page.
        "calendar_example": request.build_absolute_uri(
            reverse("calendar-feed", args=[own.calendar_token, "ENVIRONMENT"])
        ),
    }
    return render(request, "preferences/settings.html", context, status=400 if form.errors else 200)
