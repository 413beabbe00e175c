"""Scheduled maintenance windows: schedule one, list them, cancel or end one, and the
calendar feed.

Times are entered and shown in the viewer's time zone (environments/time_zones.py) and
stored in UTC. Schedule, Cancel and End now are plain forms that also work inside the
details page through htmx: there, success reloads the details page (HX-Redirect).
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import HttpResponseClientRedirect

from environments import windows
from environments.forms import CancelWindowForm, ScheduleOrStartWindowForm
from environments.models import MaintenanceWindow, UserSettings, WindowState
from environments.permissions import (
    MAINTAIN,
    can_maintain,
    environment_for,
)
from environments.refusals import OperationRefused
from environments.windows.calendar import feed_windows, ics

#: How many past windows the windows page shows.
PAST_WINDOWS = 20


def _done(request, environment, message):
    messages.success(request, message)
    if request.htmx:
        return HttpResponseClientRedirect(environment.get_absolute_url())
    return redirect(environment)


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def schedule_window(request, slug):
    """Schedule maintenance mode, or start it now for some hours: the form, and doing it."""
    environment = environment_for(request.user, slug, MAINTAIN)
    form = ScheduleOrStartWindowForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            common = {"reason": data["reason"], "notify_users": data["notify_users"]}
            try:
                if form.starts_now:
                    hours = float(data["hours"])
                    window = windows.start_now(environment, request.user, hours=hours, **common)
                else:
                    window = windows.schedule(
                        environment,
                        request.user,
                        starts_at=data["starts_at"],
                        ends_at=data["ends_at"],
                        **common,
                    )
            except OperationRefused as refused:
                form.add_error(None, refused.message)
                status = refused.status
            else:
                done = "Started" if form.starts_now else "Scheduled"
                return _done(request, environment, f"{done}: {window}.")
        else:
            status = 400
            # Focus on the first field to correct, with or without the page's script.
            first = next((name for name in form.fields if name in form.errors), None)
            if first:
                form.fields[first].widget.attrs["autofocus"] = True
    template = "environments/windows/schedule.html"
    if request.htmx:
        template += "#form"
    context = {"environment": environment, "form": form}
    return render(request, template, context, status=status)


@login_required
@never_cache
@require_GET
def window_list(request, slug):
    """An environment's windows: upcoming and active, the recent past, and its calendar."""
    environment = environment_for(request.user, slug)
    all_windows = environment.maintenance_windows.select_related("scheduled_by", "ended_by")
    calendar = UserSettings.objects.get_or_create(user=request.user)[0]
    context = {
        "environment": environment,
        "open_windows": all_windows.filter(state__in=[WindowState.SCHEDULED, WindowState.ACTIVE]),
        "past_windows": all_windows.exclude(
            state__in=[WindowState.SCHEDULED, WindowState.ACTIVE]
        ).order_by("-starts_at", "-id")[:PAST_WINDOWS],
        "may_maintain": can_maintain(request.user, environment),
        "calendar_url": request.build_absolute_uri(
            reverse("calendar-feed", args=[calendar.calendar_token, environment.slug])
        ),
    }
    return render(request, "environments/windows/list.html", context)


def _window_step(request, slug, pk, action):
    """Cancel (before the start, with a reason) or End now (while active): confirm, then
    do it."""
    environment = environment_for(request.user, slug, MAINTAIN)
    window = get_object_or_404(MaintenanceWindow, pk=pk, environment=environment)
    refusal, status = None, 200
    form = CancelWindowForm(request.POST or None) if action == "cancel" else None
    if request.method == "POST":
        try:
            if form is None:
                windows.end_now(window, request.user)
                return _done(request, environment, f"Ending: {window}.")
            if form.is_valid():
                windows.cancel(window, request.user, reason=form.cleaned_data["reason"])
                return _done(request, environment, f"Cancelled: {window}.")
            status = 400
        except OperationRefused as refused:
            refusal, status = refused.message, refused.status
    context = {
        "environment": environment,
        "window": window,
        "action": action,
        "refusal": refusal,
        "form": form,
    }
    template = "environments/windows/confirm.html"
    if request.htmx:
        template += "#confirm"
    return render(request, template, context, status=status)


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def cancel_window(request, slug, pk):
    return _window_step(request, slug, pk, "cancel")


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def end_window(request, slug, pk):
    return _window_step(request, slug, pk, "end")


@require_GET
def calendar_feed(request, token, slug):
    """An environment's windows as iCalendar, at a secret address per user: calendar
    apps send no session. Whoever holds the address sees what its user may see, until
    the user makes a new one on their settings page."""
    settings_row = UserSettings.objects.select_related("user").filter(calendar_token=token).first()
    if settings_row is None or not settings_row.user.is_active:
        raise Http404("No such calendar.")
    environment = environment_for(settings_row.user, slug)  # 404 if they may not see it
    body = ics(environment, feed_windows(environment))
    response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = f'inline; filename="{environment.slug}-maintenance.ics"'
    # The address is the secret: no shared cache may keep the answer.
    response["Cache-Control"] = "private, max-age=300"
    return response
