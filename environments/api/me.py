"""Who is calling: the token's user and the token itself (its name, scope and expiry),
for `portal login` and `portal whoami`. Any usable token may ask, a Read token too;
the answer is about that token and its user only."""

from datetime import datetime

from ninja import Field, Router, Schema

from environments.api.schemas import answers

router = Router(tags=["Tokens"])


class MeUserOut(Schema):
    username: str
    full_name: str = Field(..., description="Empty when the user has no name set")


class MeTokenOut(Schema):
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
    """The token's user (user name and full name) and the token: its name, scope and
    expiry."""
    token = request.auth
    return {
        "user": {"username": token.user.get_username(), "full_name": token.user.get_full_name()},
        "token": {
            "name": token.name,
            "prefix": token.prefix,
            "scope": token.scope,
            "scope_label": token.get_scope_display(),
            "expires_at": token.expires_at,
        },
    }
