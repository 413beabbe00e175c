"""The JSON API at /api/v1/ (django-ninja): the Maintain menu, maintenance windows,
history and database access for scripts and the `portal` command line, under the pages'
rules (environments.permissions and environments.operations). docs/api.md describes it; the
browsable docs are at /api/v1/docs, the OpenAPI document at /api/v1/openapi.json."""

from ninja import NinjaAPI, Swagger

from environments.api import access_grants, environments, history, idempotency, tokens, windows
from environments.api.auth import TokenAuth, UserRateLimit
from environments.api.problems import CONTENT_TYPE, JsonParser, install_handlers
from environments.api.schemas import finish_document

DESCRIPTION = """\
The environment maintenance portal's API. Authenticate with a personal access token
from the portal's **API tokens** page: `Authorization: Bearer lcsp_…`. Read tokens see
what their user sees; Maintain tokens also act as their user may on the Maintain menu.

Actions answer `202 Accepted` with the operation and its `Location`; poll it until
`active` is false. Every failure is a JSON problem (`type`, `title`, `status`,
`detail`): 400 bad input, 401 no valid token, 403 not allowed, 404 not found (or not
yours to see), 409 busy or not possible now, 429 too many requests (`Retry-After`).

Send an `Idempotency-Key` with a POST or DELETE to retry it safely: the same key within
24 hours gets the first answer again. Every answer carries `X-Request-Id`.
"""


class PortalApi(NinjaAPI):
    def get_openapi_schema(self, *, path_prefix=None, path_params=None):
        if path_prefix is None:
            path_prefix = self.get_root_path(path_params or {})
        document = super().get_openapi_schema(path_prefix=path_prefix)
        return finish_document(document, path_prefix.rstrip("/"), CONTENT_TYPE)


api = PortalApi(
    title="Environment maintenance portal",
    version="1",
    description=DESCRIPTION,
    urls_namespace="api-1",
    auth=TokenAuth(),
    throttle=[UserRateLimit()],
    parser=JsonParser(),
    docs=Swagger(settings={"persistAuthorization": False, "tryItOutEnabled": False}),
)
install_handlers(api)
idempotency.install(environments.router, access_grants.router, windows.router, tokens.router)
api.add_router("", environments.router)
api.add_router("", history.router)
api.add_router("", access_grants.router)
api.add_router("", windows.router)
api.add_router("", "environments.api.me.router")
api.add_router("", tokens.router)
