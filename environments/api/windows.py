"""Scheduled maintenance windows: list, schedule, cancel and end early, through
environments.windows with the page's own form, exactly as the windows pages do.

Times are ISO 8601 with an offset (``2026-12-24T22:00:00Z``): a script's clock has no
time zone setting, so a time without one is refused rather than guessed."""

import ninja
from django.http import HttpResponse
from ninja import Query, Router

from environments import windows
from environments.api.auth import maintainer, of_an_environment, user_of, via
from environments.api.conditional import not_modified
from environments.api.paging import page
from environments.api.problems import FormInvalid
from environments.api.schemas import (
    WindowCancelIn,
    WindowEndedOut,
    WindowIn,
    WindowNowIn,
    WindowOut,
    WindowStartedOut,
    answers,
    api_url,
    choice,
)
from environments.forms import CancelWindowForm, ScheduleOrStartWindowForm, ScheduleWindowForm
from environments.models import MaintenanceWindow, OperationKind, WindowState
from environments.permissions import MAINTAIN, VIEW, environment_for

router = Router(tags=["Maintenance windows"])


@router.get(
    "/environments/{slug}/maintenance-windows",
    response=answers(200, list[WindowOut], 400, 404),
    url_name="environment_windows",
)
def list_windows(
    request,
    slug: str,
    response: HttpResponse,
    state: choice(WindowState.values) | None = None,
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = None,
):
    """The environment's windows still to come or active (scheduled, active), soonest
    first; or, with ``state`` (scheduled, active, completed, cancelled, missed), the
    windows in that state, newest first. ``limit`` of them a page; the next page's URL
    is in the ``Link: <…>; rel="next"`` header."""
    environment = environment_for(user_of(request), slug)
    found = environment.maintenance_windows.select_related(
        "environment", "scheduled_by", "ended_by"
    )
    if not state:
        found, order = found.open(), ["starts_at", "id"]
    else:
        found, order = found.filter(state=state), ["-starts_at", "-id"]
    place = lambda window: [window.starts_at.isoformat(), window.pk]  # noqa: E731
    found = page(request, response, found, order, place, limit=limit, cursor=cursor)
    return found


@router.post(
    "/environments/{slug}/maintenance-windows",
    response=answers(201, WindowOut, 400, 403, 404),
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
    window = windows.schedule(environment, user, **form.cleaned_data, via=via(request))
    response["Location"] = api_url("window", window.pk)
    return ninja.Status(201, window)


@router.post(
    "/environments/{slug}/maintenance-windows/now",
    response=answers(202, WindowStartedOut, 400, 403, 404, 409),
    url_name="environment_window_now",
)
def start_window_now(request, slug: str, payload: WindowNowIn, response: HttpResponse):
    """Start now, for ``hours``: maintenance mode on at once and off by itself when the
    hours are over, a window that starts now. 202 with the Enable Maintenance mode
    operation to poll; refused (409) when maintenance mode cannot turn on now."""
    user = maintainer(request)
    environment = environment_for(user, slug, MAINTAIN)
    form = ScheduleOrStartWindowForm(
        {
            "start": ScheduleOrStartWindowForm.NOW,
            "hours": payload.hours,
            "reason": payload.reason,
            "notify_users": payload.notify_users,
        }
    )
    if not form.is_valid():
        raise FormInvalid(form)
    data = form.cleaned_data
    window = windows.start_now(
        environment,
        user,
        hours=float(data["hours"]),
        reason=data["reason"],
        notify_users=data["notify_users"],
        via=via(request),
    )
    operation = window.operations.get(kind=OperationKind.ENABLE_MAINTENANCE)
    response["Location"] = api_url("window", window.pk)
    return ninja.Status(202, {"maintenance_window": window, "operation": operation})


@router.get(
    "/maintenance-windows/{window_id}", response=answers(200, WindowOut, 404), url_name="window"
)
def window_detail(request, window_id: int, response: HttpResponse):
    """The window; with an ETag, for ``If-None-Match`` (304 while it is unchanged)."""
    window = _window(user_of(request), window_id)
    if unchanged := not_modified(request, response, window.environment, f"window-{window_id}"):
        return unchanged
    return window


@router.post(
    "/maintenance-windows/{window_id}/cancel",
    response=answers(200, WindowOut, 400, 403, 404, 409),
    url_name="window_cancel",
)
def cancel_window(request, window_id: int, payload: WindowCancelIn):
    """Cancel a window that has not started, saying why (kept in the history)."""
    user = maintainer(request)
    window = _window(user, window_id, MAINTAIN)
    form = CancelWindowForm({"reason": payload.reason})
    if not form.is_valid():
        raise FormInvalid(form)
    window = windows.cancel(window, user, reason=form.cleaned_data["reason"], via=via(request))
    return window


@router.post(
    "/maintenance-windows/{window_id}/end",
    response={200: WindowEndedOut, **answers(202, WindowEndedOut, 403, 404, 409)},
    url_name="window_end",
)
def end_window(request, window_id: int, response: HttpResponse):
    """End an active window now. 202 with the Disable Maintenance mode operation to poll
    (the window is Completed when it succeeds); 200 when maintenance mode was already
    off and the window is Completed at once."""
    user = maintainer(request)
    window = windows.end_now(_window(user, window_id, MAINTAIN), user, via=via(request))
    operation = window.operations.filter(kind=OperationKind.DISABLE_MAINTENANCE).first()
    answer = {"maintenance_window": window, "operation": None}
    if operation is None:
        return answer
    response["Location"] = api_url("operation", operation.activity_id)
    answer["operation"] = operation
    return ninja.Status(202, answer)


def _window(user, pk, action=VIEW):
    windows_ = MaintenanceWindow.objects.select_related("scheduled_by", "ended_by")
    return of_an_environment(user, windows_, pk, "maintenance window", action)
