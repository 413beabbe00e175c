"""API tokens made and rotated through the API, so that a pipeline renews its own
credential without a person: for a service account whose roles all lie in projects you
own, or for anyone as a superuser (environments.tokens.may_make_token, the admin's rule
too), but never for the token's own user: a leaked token that made itself a sibling
would outlive its revocation. People make their own on the API tokens page; a token
replaces itself by rotation, which revokes it. The secret is in the answer that makes
it, and nowhere else: the replay of an Idempotency-Key says it was shown once
(environments.api.idempotency)."""

from datetime import datetime
from typing import Literal

import ninja
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import Http404
from ninja import Field, Router, Schema
from pydantic import AwareDatetime, field_validator

from environments import tokens
from environments.api.auth import maintainer
from environments.api.problems import FormInvalid
from environments.api.schemas import SOME_TEXT, answers
from environments.models import ApiToken
from environments.refusals import OperationRefused

router = Router(tags=["Tokens"])


class TokenIn(Schema):
    name: str = Field(
        ...,
        description="What it is for; the history shows it: “… via API (<name>)”.",
        examples=["nightly restarts"],
        json_schema_extra={"minLength": 1, "maxLength": 100, "pattern": SOME_TEXT},
    )
    scope: Literal["read", "maintain"] = Field(
        ..., description="read sees what its user sees; maintain also acts as its user may."
    )
    user: str = Field(
        ...,
        description="The user name of its holder: a service account whose roles all lie "
        "in projects you own, or anyone else for a superuser; never yourself (your own "
        "are made on the API tokens page, or replaced by rotation).",
        examples=["nightly-restarts"],
    )
    expires_at: AwareDatetime | None = Field(
        None,
        description="Default: PORTAL_API_TOKEN_DAYS (90) days from now; at most "
        "PORTAL_API_TOKEN_MAX_DAYS (365).",
        examples=["2027-03-01T00:00:00Z"],
    )

    @field_validator("expires_at", mode="before")
    @classmethod
    def iso_text(cls, value):
        # Not a number of seconds: a time a person can read back, with its offset.
        if value is not None and not isinstance(value, str):
            raise ValueError("Give the time as ISO 8601 text with its offset.")
        return value


class TokenOut(Schema):
    id: int
    user: str = Field(..., description="Its holder's user name", alias="user.username")
    name: str
    prefix: str = Field(..., description="Its first characters, as the pages show them")
    scope: Literal["read", "maintain"]
    scope_label: str = Field(..., alias="get_scope_display")
    created_at: datetime
    expires_at: datetime


class NewTokenOut(TokenOut):
    secret: str | None = Field(
        ...,
        description="The token, for `Authorization: Bearer …`: in this answer only. Null "
        "in the replay of an Idempotency-Key, where secret_note says so.",
    )
    secret_note: str | None = Field(None, description="Why secret is null (a replay).")


def _with_secret(token, secret):
    """The token for its answer, with its secret: shown in this answer only."""
    token.secret = secret
    return token


@router.post("/tokens", response=answers(201, NewTokenOut, 400, 403), url_name="tokens")
def make_token(request, payload: TokenIn):
    """Make a token for a service account whose roles all lie in projects you own, or (a
    superuser) for anyone else; never for yourself. Its secret is in this answer only."""
    maker = maintainer(request)
    name = payload.user
    if name == maker.get_username():
        raise PermissionDenied(tokens.NO_TOKEN_FOR_ITSELF)
    holder = get_user_model().objects.select_related("service_account").filter(username=name)
    holder = holder.first()
    if holder is None or not tokens.may_make_token(maker, holder):
        raise PermissionDenied(tokens.refusal_to_make_token(name))
    form = tokens.AdminTokenForm(
        {
            "user": holder.pk,
            "name": payload.name,
            "scope": payload.scope,
            "expires_at": payload.expires_at or tokens.default_expiry(),
        }
    )
    form.maker = maker
    if not form.is_valid():
        raise FormInvalid(form)
    data = form.cleaned_data
    token, secret = tokens.issue(
        holder, name=data["name"], scope=data["scope"], expires_at=data["expires_at"]
    )
    return ninja.Status(201, _with_secret(token, secret))


@router.post(
    "/tokens/{token_id}/rotate",
    response=answers(201, NewTokenOut, 403, 404, 409),
    url_name="token_rotate",
)
def rotate_token(request, token_id: int):
    """Revoke a token and make its successor at once: the same holder, name and scope,
    for PORTAL_API_TOKEN_DAYS (90) days. Any token whose holder you may make tokens for,
    the one this request is sent with too (`GET /me` gives its id); that one stops as
    soon as this answer is sent. 409 for a token that was revoked already."""
    maker = maintainer(request)
    token = ApiToken.objects.select_related("user__service_account").filter(pk=token_id).first()
    if token is None or not tokens.may_make_token(maker, token.user):
        raise Http404("No such token.")
    rotated = tokens.rotate(token)
    if rotated is None:
        raise OperationRefused(
            f"The token “{token.name}” was revoked already: make a new one (POST /tokens).",
            OperationRefused.NOT_ALLOWED,
        )
    return ninja.Status(201, _with_secret(*rotated))
