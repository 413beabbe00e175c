"""Who is calling: the token's user and the token itself (its name, scope and expiry),
for `portal login` and `portal whoami`. Any usable token may ask, a Read token too;
the answer is about that token and its user only."""

from datetime import datetime

from ninja import Field, Router, Schema

from environments.api.schemas import answers
from environments.models import is_service_account

router = Router(tags=["Tokens"])


class MeUserOut(Schema):
    username: str
    full_name: str = Field(..., description="Empty when the user has no name set")
    service_account: bool = Field(..., description="A user for scripts, not a person")


class MeTokenOut(Schema):
    id: int = Field(..., description="For POST /tokens/{token_id}/rotate")
    name: str
    prefix: str = Field(..., description="The token's first characters, as the pages show them")
    scope: str = Field(..., json_schema_extra={"enum": ["read", "maintain"]})
    scope_label: str
    expires_at: datetime


class MeOut(Schema):
    user: MeUserOut
    token: MeTokenOut


@router.get("/me", response=answers(200, MeOut), url_name="me")
def me(request):
    """The token's user (user name, full name, whether a service account) and the
    token: its id, name, scope and expiry."""
    token = request.auth
    user = token.user
    return {
        "user": {
            "username": user.get_username(),
            "full_name": user.get_full_name(),
            "service_account": is_service_account(user),
        },
        "token": {
            "id": token.pk,
            "name": token.name,
            "prefix": token.prefix,
            "scope": token.scope,
            "scope_label": token.get_scope_display(),
            "expires_at": token.expires_at,
        },
    }
