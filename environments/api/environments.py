"""Environments: the list, one environment's details, and starting Maintain actions.

Each endpoint fetches its environment through permissions.environment_for and starts work
through environments.operations, exactly as the pages do, with the pages' own forms
checking the values."""

from uuid import UUID

import ninja
from django.http import Http404, HttpResponse
from ninja import Field, Query, Router, Schema

from environments import operations
from environments.api.auth import maintainer, user_of, via
from environments.api.conditional import not_modified
from environments.api.paging import page
from environments.api.problems import FormInvalid
from environments.api.schemas import (
    OPERATION_ACTIONS,
    EnvironmentDetailOut,
    EnvironmentOut,
    OperationIn,
    OperationOut,
    answers,
    api_url,
    choice,
)
from environments.forms import MaintainForm
from environments.models import OperationKind, Status
from environments.permissions import (
    MAINTAIN,
    environment_for,
    visible_environments,
    visible_operations,
)
from environments.refusals import OperationRefused

router = Router(tags=["Environments"])


@router.get(
    "/environments", response=answers(200, list[EnvironmentOut], 400), url_name="environments"
)
def list_environments(
    request,
    response: HttpResponse,
    project: str | None = Query(None, pattern=r"^[-a-zA-Z0-9_]+$", description="A project slug"),
    status: choice(Status.values) | None = None,
    limit: int | None = Query(None, ge=1, le=1000),
    cursor: str | None = None,
):
    """The environments the token's user may see, by project and name; filtered by
    project slug and status value (deployed, restarting_service, servicing,
    in_maintenance, failed). All of them; or, with ``limit``, that many, and the next
    page's URL in the ``Link: <…>; rel="next"`` header."""
    environments = visible_environments(user_of(request)).select_related("project")
    if project:
        environments = environments.filter(project__slug=project)
    if status:
        environments = environments.filter(status=status)
    if limit or cursor:
        environments = page(
            request,
            response,
            environments,
            ["project__name", "name", "pk"],
            lambda e: [e.project.name, e.name, e.pk],
            limit=limit or 100,
            cursor=cursor,
        )
    return environments


@router.get(
    "/environments/{slug}", response=answers(200, EnvironmentDetailOut, 404), url_name="environment"
)
def environment_detail(request, slug: str, response: HttpResponse):
    """Status, services, the running or failed operation, active grants, maintenance
    mode and who may sign in, and the actions this token may start now. With an ETag:
    ``If-None-Match`` answers 304 while none of it changed."""
    user = user_of(request)
    environment = environment_for(user, slug)
    if unchanged := not_modified(request, response, environment, f"environment-{slug}"):
        return unchanged
    return environment


@router.post(
    "/environments/{slug}/operations",
    response=answers(202, OperationOut, 400, 403, 404, 409),
    url_name="environment_operations",
)
def start_operation(request, slug: str, payload: OperationIn, response: HttpResponse):
    """Start a Maintain action: restart_service (with service), enable_maintenance,
    disable_maintenance, resume, rollback or abort. Answers 202 with the operation;
    poll its Location (GET /operations/{activity_id}) until it is no longer active."""
    user = maintainer(request)
    environment = environment_for(user, slug, MAINTAIN)
    if payload.action not in OPERATION_ACTIONS:
        raise OperationRefused(
            f"There is no such Maintain action: use one of {', '.join(OPERATION_ACTIONS)} "
            "(database access has endpoints of its own).",
            OperationRefused.INVALID,
        )
    data = {"reason": payload.reason, "service": payload.service or ""}
    operation, form = operations.start_from_input(
        OperationKind(payload.action), environment, user, data, via=via(request)
    )
    if operation is None:
        raise FormInvalid(form)
    response["Location"] = api_url("operation", operation.activity_id)
    return ninja.Status(202, operation)


class StopIn(Schema):
    reason: str = Field(..., description="Why: kept in the environment history.")


@router.post(
    "/operations/{activity_id}/stop",
    response=answers(202, OperationOut, 400, 403, 404, 409),
    url_name="operation_stop",
)
def stop_operation(request, activity_id: UUID, payload: StopIn):
    """Stop a running Maintain operation: no further step runs. A command in flight is
    allowed to end; the answer says Running (its stop asked for) until then, and the
    operation then fails with "Stopped by <user>: <reason>". Ending access is not
    stopped: revoke or remove the grant instead."""
    user = maintainer(request)
    operation = visible_operations(user).filter(activity_id=activity_id).first()
    if operation is None:
        raise Http404("No such operation.")
    environment = environment_for(user, operation.environment.slug, MAINTAIN)
    if operations.stoppable(environment) != operation:
        raise OperationRefused(
            f"{operation.activity} is not running: there is nothing of it to stop.",
            OperationRefused.NOT_ALLOWED,
        )
    form = MaintainForm({"reason": payload.reason}, environment=environment)
    if not form.is_valid():
        raise FormInvalid(form)
    operations.stop(environment, user, form.cleaned_data["reason"], via=via(request))
    operation.refresh_from_db()
    return ninja.Status(202, operation)
