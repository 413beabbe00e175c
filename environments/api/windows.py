"""Scheduled maintenance windows: list, schedule, cancel and end early, through
environments.windows with the page's own form, exactly as the windows pages do.

Times are ISO 8601 with an offset (``2026-12-24T22:00:00Z``): a script's clock has no
time zone setting, so a time without one is refused rather than guessed."""

import ninja
from django.http import Http404, HttpResponse
from ninja import Router

from environments import windows
from environments.access import MAINTAIN, VIEW, environment_for
from environments.api.auth import maintainer, user_of
from environments.api.problems import FormInvalid
from environments.api.schemas import (
    WindowEndedOut,
    WindowIn,
    WindowOut,
    answers,
    api_url,
    operation_out,
    window_out,
)
from environments.forms import ScheduleWindowForm
from environments.models import MaintenanceWindow, WindowState
from environments.operations import OperationRefused

router = Router(tags=["Maintenance windows"])


@router.get(
    "/environments/{slug}/maintenance-windows",
    response=answers(200, list[WindowOut], 400, 404),
    url_name="environment_windows",
)
def list_windows(request, slug: str, state: str | None = None):
    """The environment's windows in start order: by default those still to come or
    active (scheduled, active); ``state`` names one state instead (scheduled, active,
    completed, cancelled, missed)."""
    environment = environment_for(user_of(request), slug)
    found = environment.maintenance_windows.select_related("environment", "scheduled_by")
    if state is None:
        found = found.open()
    elif state in WindowState.values:
        found = found.filter(state=state)
    else:
        raise OperationRefused(
            f"Unknown state {state!r}: use one of {', '.join(WindowState.values)}.",
            OperationRefused.INVALID,
        )
    return [window_out(window) for window in found.order_by("starts_at", "id")]


@router.post(
    "/environments/{slug}/maintenance-windows",
    response=answers(201, WindowOut, 400, 403, 404, 409),
    url_name="environment_windows",
)
def schedule_window(request, slug: str, payload: WindowIn, response: HttpResponse):
    """Schedule maintenance mode: on at ``starts_at``, off at ``ends_at``. Windows of
    one environment never overlap; the refusal names the window in the way."""
    user = maintainer(request)
    environment = environment_for(user, slug, MAINTAIN)
    form = ScheduleWindowForm(
        {
            "starts_at": payload.starts_at.isoformat(),
            "ends_at": payload.ends_at.isoformat(),
            "reason": payload.reason,
            "notify_users": payload.notify_users,
        }
    )
    if not form.is_valid():
        raise FormInvalid(form)
    window = windows.schedule(environment, user, **form.cleaned_data)
    response["Location"] = api_url("window", window.pk)
    return ninja.Status(201, window_out(window))


@router.get(
    "/maintenance-windows/{window_id}", response=answers(200, WindowOut, 404), url_name="window"
)
def window_detail(request, window_id: int):
    return window_out(_window_for(user_of(request), window_id))


@router.post(
    "/maintenance-windows/{window_id}/cancel",
    response=answers(200, WindowOut, 403, 404, 409),
    url_name="window_cancel",
)
def cancel_window(request, window_id: int):
    """Cancel a window that has not started."""
    user = maintainer(request)
    window = windows.cancel(_window_for(user, window_id, MAINTAIN), user)
    return window_out(window)


@router.post(
    "/maintenance-windows/{window_id}/end",
    response=answers(202, WindowEndedOut, 403, 404, 409),
    url_name="window_end",
)
def end_window(request, window_id: int, response: HttpResponse):
    """End an active window now: maintenance mode is turned off (poll the operation,
    when there is one; the window is Completed when it succeeds)."""
    user = maintainer(request)
    window = windows.end_now(_window_for(user, window_id, MAINTAIN), user)
    operation = window.environment.running_operation()
    answer = {"maintenance_window": window_out(window), "operation": None}
    if operation is not None:
        response["Location"] = api_url("operation", operation.activity_id)
        answer["operation"] = operation_out(operation)
    return ninja.Status(202, answer)


def _window_for(user, pk, action=VIEW):
    """The window, if the user may see (or, with MAINTAIN, maintain) its environment:
    404 for whoever may not see it, as for a window that does not exist."""
    window = (
        MaintenanceWindow.objects.select_related("environment", "scheduled_by", "ended_by")
        .filter(pk=pk)
        .first()
    )
    if window is None:
        raise Http404("No such maintenance window.")
    try:
        environment_for(user, window.environment.slug, action)
    except Http404:
        raise Http404("No such maintenance window.") from None
    return window
