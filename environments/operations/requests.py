"""One way from what a person sent to an operation, for the pages and the API alike.

Both check in one order: who you are (401) and the token's scope (403) at their own
edge; the environment (404) and the permission (403) through environments.permissions;
then, here, the environment's state (409: busy, not allowed now, ineligible); and only
then the input (400), with the pages' own forms."""

from environments.forms import EnableAccessForm, MaintainForm, RequestAccessForm, RestartServiceForm
from environments.models import OperationKind
from environments.operations.core import check_allowed
from environments.operations.grants import access_lifetime, enable_access, request_access
from environments.operations.maintain import (
    abort,
    disable_maintenance,
    enable_maintenance,
    restart_service,
    resume,
    rollback,
)

START_FUNCTIONS = {
    OperationKind.RESTART_SERVICE: restart_service,
    OperationKind.ENABLE_MAINTENANCE: enable_maintenance,
    OperationKind.DISABLE_MAINTENANCE: disable_maintenance,
    OperationKind.RESUME: resume,
    OperationKind.ROLLBACK: rollback,
    OperationKind.ABORT: abort,
    OperationKind.ENABLE_ACCESS: enable_access,
    OperationKind.REQUEST_ACCESS: request_access,
}

FORMS = {
    OperationKind.RESTART_SERVICE: RestartServiceForm,
    OperationKind.ENABLE_ACCESS: EnableAccessForm,
    OperationKind.REQUEST_ACCESS: RequestAccessForm,
}


def form_for(kind, environment, data=None, **kwargs):
    """The form that asks for what ``kind`` needs: a reason always, and a service, an
    address or a level where it takes one."""
    form_class = FORMS.get(kind, MaintainForm)
    if kind == OperationKind.RESTART_SERVICE:
        kwargs["services"] = environment.services.all()
    return form_class(data, environment=environment, **kwargs)


def start_from_input(kind, environment, user, data, *, via=""):
    """Start ``kind`` with ``data``: refused (OperationRefused) when it may not start now,
    whatever the input; otherwise ``(operation, form)``, the operation None when the form
    is not valid."""
    check_allowed(environment, user, kind)
    form = form_for(kind, environment, data)
    if not form.is_valid():
        return None, form
    arguments = _arguments(kind, form.cleaned_data)
    return START_FUNCTIONS[kind](environment, user, via=via, **arguments), form


def _arguments(kind, cleaned_data):
    arguments = {"reason": cleaned_data["reason"]}
    if kind == OperationKind.RESTART_SERVICE:
        arguments["service_kind"] = cleaned_data["service"]
    if kind in (OperationKind.ENABLE_ACCESS, OperationKind.REQUEST_ACCESS):
        arguments["lifetime"] = access_lifetime(cleaned_data["hours"])
    if kind == OperationKind.ENABLE_ACCESS:
        arguments.update(name=cleaned_data["name"], cidr=cleaned_data["address"])
    if kind == OperationKind.REQUEST_ACCESS:
        arguments["level"] = cleaned_data["level"]
    return arguments
