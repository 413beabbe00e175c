"""Who may sign in to an environment: the decision, the sign-in page and the
forward-auth endpoint, for every status and every kind of user.

The cast on the environment: sam is its System administrator and ursula a User (neither
is a member of the project), maya its Maintenance mode user (and a project team member),
tom a project team member without an environment role, olga an outsider (owner of
another project), root a superuser without an environment role.
"""

import re

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import Client, RequestFactory
from django.urls import reverse

from environments import operations
from environments.models import (
    Environment,
    EnvironmentRole,
    EnvironmentRoleKind,
    OperationKind,
    ProjectMembership,
    Status,
)
from environments.permissions import environment_role, forward_auth_decision
from environments.permissions import sign_in_decision as decide
from tests.conftest import make_user

RESTART = OperationKind.RESTART_SERVICE


def sign_in_decision(user, environment):
    return decide(user, environment, environment_role(user, environment))


ENABLE = OperationKind.ENABLE_MAINTENANCE
DISABLE = OperationKind.DISABLE_MAINTENANCE


# --- Getting the environment into each status, through the real operations -------------


def _restart(environment, owner, start):
    return start(RESTART, environment, owner, service_kind="aos")


def _enable_maintenance(environment, owner, start):
    return start(ENABLE, environment, owner)


def _in_maintenance(environment, owner, start):
    operations.complete_operation(_enable_maintenance(environment, owner, start).pk)


STATUSES = {
    "deployed": lambda environment, owner, start: None,
    "restarting_service": _restart,
    "failed_after_restart": lambda environment, owner, start: operations.fail_operation(
        _restart(environment, owner, start).pk, "The driver failed."
    ),
    "servicing": _enable_maintenance,
    "in_maintenance": _in_maintenance,
    "failed_after_enable_maintenance": lambda environment, owner, start: operations.fail_operation(
        _enable_maintenance(environment, owner, start).pk, "The driver failed."
    ),
    "failed_after_disable_maintenance": lambda environment, owner, start: (
        _in_maintenance(environment, owner, start),
        operations.fail_operation(start(DISABLE, environment, owner).pk, "The driver failed."),
    ),
}

EXPECTED_STATUS = {
    "deployed": Status.DEPLOYED,
    "restarting_service": Status.RESTARTING_SERVICE,
    "failed_after_restart": Status.FAILED,
    "servicing": Status.SERVICING,
    "in_maintenance": Status.IN_MAINTENANCE,
    "failed_after_enable_maintenance": Status.FAILED,
    "failed_after_disable_maintenance": Status.FAILED,
}

EVERYONE_WITH_A_ROLE = {"sysadmin", "maint", "env_user", "superuser"}
MAINTENANCE_ROLES_ONLY = {"sysadmin", "maint"}

#: Who may sign in, per status: the rule under test, written out.
ALLOWED = {
    "deployed": EVERYONE_WITH_A_ROLE,
    "restarting_service": EVERYONE_WITH_A_ROLE,
    "failed_after_restart": EVERYONE_WITH_A_ROLE,
    "servicing": MAINTENANCE_ROLES_ONLY,
    "in_maintenance": MAINTENANCE_ROLES_ONLY,
    "failed_after_enable_maintenance": MAINTENANCE_ROLES_ONLY,
    "failed_after_disable_maintenance": MAINTENANCE_ROLES_ONLY,
}

WHO = ["sysadmin", "maint", "env_user", "member", "superuser", "outsider", "anonymous"]


def _environment_role(environment, username, role):
    user = make_user(username)
    EnvironmentRole.objects.create(user=user, environment=environment, role=role)
    return user


@pytest.fixture
def sysadmin(environment):
    return _environment_role(environment, "sam", EnvironmentRoleKind.SYSTEM_ADMINISTRATOR)


@pytest.fixture
def env_user(environment):
    return _environment_role(environment, "ursula", EnvironmentRoleKind.USER)


@pytest.fixture
def cast(sysadmin, maint, env_user, member, superuser, outsider):
    return {
        "sysadmin": sysadmin,
        "maint": maint,
        "env_user": env_user,
        "member": member,
        "superuser": superuser,
        "outsider": outsider,
        "anonymous": None,
    }


@pytest.fixture
def put_in(environment, owner, start):
    """Bring the environment into a status of STATUSES; return it fresh from the database."""

    def _put_in(status):
        STATUSES[status](environment, owner, start)
        fresh = Environment.objects.get(pk=environment.pk)
        assert fresh.status == EXPECTED_STATUS[status]
        return fresh

    return _put_in


def client_for(user):
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def sign_in_url(environment):
    return reverse("environment-sign-in", args=[environment.slug])


def auth_url(environment):
    return reverse("environment-auth", args=[environment.slug])


# --- The matrix: status x who, for the decision, the page and the endpoint -------------

matrix = pytest.mark.parametrize(
    "status, who", [(status, who) for status in STATUSES for who in WHO]
)


@matrix
def test_decision_lets_in_only_the_roles_the_status_allows(put_in, cast, status, who):
    environment = put_in(status)
    user = cast[who] or AnonymousUser()

    decision = sign_in_decision(user, environment)

    assert decision.allowed == (who in ALLOWED[status]), decision.reason
    assert decision.reason
    if user.is_authenticated:
        # The forward-auth path, which reads the role in its own statement, must agree;
        # an outsider is told no more than of an environment that does not exist.
        request = RequestFactory().get(auth_url(environment))
        request.user = user
        forwarded = forward_auth_decision(request, environment.slug)
        if who == "outsider":
            assert forwarded == forward_auth_decision(request, "no-such-environment")
        else:
            assert forwarded == decision


@matrix
def test_sign_in_page_sends_those_allowed_to_the_environment_and_refuses_the_rest(
    put_in, cast, status, who
):
    environment = put_in(status)

    response = client_for(cast[who]).get(sign_in_url(environment))

    if who == "anonymous":
        assert response.status_code == 302
        assert response.url == f"{reverse('login')}?next={sign_in_url(environment)}"
    elif who == "outsider":
        assert response.status_code == 404
    elif who in ALLOWED[status]:
        assert response.status_code == 302
        assert response.url == environment.url
    else:
        assert response.status_code == 403
        body = response.content.decode()
        assert sign_in_decision(cast[who], environment).reason in body
        assert ("Who can still sign in" in body) == (ALLOWED[status] == MAINTENANCE_ROLES_ONLY)


@matrix
def test_auth_endpoint_answers_204_401_or_403_by_the_same_decision(put_in, cast, status, who):
    environment = put_in(status)
    user = cast[who]

    response = client_for(user).get(auth_url(environment))

    if who == "anonymous":
        assert response.status_code == 401
    elif who in ALLOWED[status]:
        assert response.status_code == 204
        assert response["X-Portal-User"] == user.username
        assert response["X-Portal-Roles"]
    else:
        assert response.status_code == 403
        assert "X-Portal-User" not in response
    assert response.content == b""
    assert "no-store" in response["Cache-Control"]
    assert not response.cookies


# --- The sign-in page -----------------------------------------------------------------


def test_refusal_page_says_maintenance_mode_since_when_and_who_can_still_sign_in(put_in, cast):
    environment = put_in("in_maintenance")

    response = client_for(cast["env_user"]).get(sign_in_url(environment))

    assert response.status_code == 403
    body = response.content.decode()
    assert "Demo sandbox is in maintenance mode" in body
    assert f"since {environment.status_changed_at:%Y-%m-%d %H:%M:%S}" in body
    listed = re.findall(r"<li>(.*?)</li>", body)
    assert listed == ["maya (Maintenance mode user)", "sam (System administrator)"]


def test_refusal_page_says_when_a_maintenance_operation_failed(put_in, cast):
    environment = put_in("failed_after_enable_maintenance")

    body = client_for(cast["env_user"]).get(sign_in_url(environment)).content.decode()

    assert "Demo sandbox is Failed while turning maintenance mode on or off" in body
    assert "maya (Maintenance mode user)" in body


def test_refusal_page_says_who_can_sign_in_even_when_nobody_can(environment, owner, start):
    user = _environment_role(environment, "ursula", EnvironmentRoleKind.USER)
    _in_maintenance(environment, owner, start)

    body = client_for(user).get(sign_in_url(environment)).content.decode()

    assert "No one: nobody has the System administrator or Maintenance mode user role" in body


def test_project_member_without_a_role_is_told_so_and_not_shown_who_may_enter(put_in, cast):
    environment = put_in("deployed")

    response = client_for(cast["member"]).get(sign_in_url(environment))

    assert response.status_code == 403
    body = response.content.decode()
    assert "You have no role on Demo sandbox" in body
    assert "Who can still sign in" not in body
    assert "sam (" not in body


def test_refusal_page_has_no_inline_script_or_style(put_in, cast):
    environment = put_in("in_maintenance")

    body = client_for(cast["env_user"]).get(sign_in_url(environment)).content.decode()

    assert not re.search(r"<script(?![^>]*\bsrc=)", body)
    assert "style=" not in body
    assert "<style" not in body


def test_sign_in_page_for_an_environment_without_url_is_404(environment, cast):
    Environment.objects.filter(pk=environment.pk).update(url="")

    response = client_for(cast["maint"]).get(sign_in_url(environment))

    assert response.status_code == 404


def test_sign_in_page_of_an_unknown_environment_is_404(cast):
    response = client_for(cast["superuser"]).get(
        reverse("environment-sign-in", args=["no-such-environment"])
    )
    assert response.status_code == 404


# --- The decision -----------------------------------------------------------------------


def test_a_project_owner_without_an_environment_role_may_not_sign_in(environment, owner):
    decision = sign_in_decision(owner, environment)

    assert not decision.allowed
    assert decision.reason.startswith("You have no role on Demo sandbox")


def test_an_inactive_user_may_not_sign_in_whatever_their_role(environment, maint):
    maint.is_active = False
    maint.save()

    assert not sign_in_decision(maint, environment).allowed


def test_a_superuser_with_a_maintenance_role_may_sign_in_during_maintenance(
    put_in, environment, superuser
):
    EnvironmentRole.objects.create(
        user=superuser, environment=environment, role=EnvironmentRoleKind.SYSTEM_ADMINISTRATOR
    )
    environment = put_in("in_maintenance")

    decision = sign_in_decision(superuser, environment)

    assert decision.allowed
    assert decision.roles == (EnvironmentRoleKind.SYSTEM_ADMINISTRATOR, "superuser")


def test_an_environment_role_grants_sign_in_without_any_project_membership(environment, env_user):
    assert not ProjectMembership.objects.filter(user=env_user).exists()

    assert sign_in_decision(env_user, environment).allowed


def test_a_user_may_sign_in_again_after_maintenance_mode_is_disabled(
    put_in, environment, owner, cast, start
):
    put_in("in_maintenance")
    client = client_for(cast["env_user"])
    assert client.get(auth_url(environment)).status_code == 403

    operation = start(DISABLE, environment, owner)
    assert client.get(auth_url(environment)).status_code == 403  # Servicing
    operations.complete_operation(operation.pk)

    assert client.get(auth_url(environment)).status_code == 204
    assert client.get(sign_in_url(environment)).url == environment.url


# --- The forward-auth endpoint ------------------------------------------------------------


@pytest.mark.parametrize(
    "who, roles",
    [
        ("sysadmin", "system_administrator"),
        ("maint", "maintenance_mode_user"),
        ("env_user", "user"),
        ("superuser", "superuser"),
    ],
)
def test_auth_endpoint_names_the_user_and_their_roles(put_in, cast, who, roles):
    environment = put_in("deployed")

    response = client_for(cast[who]).get(auth_url(environment))

    assert response.status_code == 204
    assert response["X-Portal-User"] == cast[who].username
    assert response["X-Portal-Roles"] == roles


def test_auth_endpoint_refuses_an_unknown_environment_as_it_refuses_a_known_one(cast):
    url = reverse("environment-auth", args=["no-such-environment"])

    assert client_for(cast["superuser"]).get(url).status_code == 403
    assert client_for(None).get(url).status_code == 401


def test_auth_endpoint_answers_an_anonymous_request_without_redirecting(environment):
    response = client_for(None).get(auth_url(environment))

    assert response.status_code == 401
    assert "Location" not in response


def test_auth_endpoint_answers_only_get(environment, cast):
    response = client_for(cast["maint"]).post(auth_url(environment))

    assert response.status_code == 405


def test_auth_decision_refuses_an_outsider_without_saying_whether_it_exists(
    rf, environment, outsider
):
    known = rf.get("/")
    known.user = outsider
    unknown = rf.get("/")
    unknown.user = outsider

    assert not forward_auth_decision(known, environment.slug).allowed
    assert not forward_auth_decision(unknown, "no-such-environment").allowed


@pytest.mark.parametrize("who", ["maint", "env_user", "superuser", "member"])
def test_auth_endpoint_stays_within_three_queries(
    put_in, environment, owner, cast, start, who, django_assert_max_num_queries
):
    # A long history, and a status that needs the latest operation to decide.
    for _ in range(5):
        operation = _restart(environment, owner, start)
        operations.complete_operation(operation.pk)
    environment = put_in("failed_after_enable_maintenance")
    client = client_for(cast[who])

    # The session; the user; the environment with the user's role on it.
    with django_assert_max_num_queries(3):
        response = client.get(auth_url(environment))

    assert response.status_code == (204 if who == "maint" else 403)


def test_forward_auth_tells_an_outsider_nothing_of_a_planned_window(
    client, environment, manager, outsider
):
    from datetime import timedelta

    from django.utils import timezone

    from environments import windows

    starts = timezone.now() + timedelta(hours=2)
    windows.schedule(
        environment, manager, starts_at=starts, ends_at=starts + timedelta(hours=1), reason="x"
    )
    client.force_login(outsider)
    known = client.get(auth_url(environment))
    unknown = client.get(reverse("environment-auth", args=["no-such-environment"]))
    assert known.status_code == unknown.status_code == 403
    assert "X-Portal-Maintenance-Window" not in known


# --- What the refusal page says about the maintenance under way -------------------------


def test_refusal_page_says_who_turned_maintenance_on_when_and_why_and_that_the_end_is_unknown(
    environment, owner, env_user, start
):
    operation = start(ENABLE, environment, owner, reason="Upgrading to 10.0.40")
    operations.complete_operation(operation.pk)

    response = client_for(env_user).get(sign_in_url(environment))

    assert response.status_code == 403
    body = response.content.decode()
    assert re.search(r'data-testid="turned-on-by">alice<', body)
    assert f"{operation.started_at:%Y-%m-%d %H:%M:%S}" in body
    assert re.search(r'data-testid="turned-on-reason">Upgrading to 10.0.40<', body)
    assert "Not known: when someone turns maintenance mode off" in body


def test_refusal_page_names_a_windows_end_and_who_scheduled_it(environment, manager, env_user):
    from datetime import timedelta

    from django.utils import timezone

    from environments import windows

    starts = timezone.now() + timedelta(hours=1)
    window = windows.schedule(
        environment,
        manager,
        starts_at=starts,
        ends_at=starts + timedelta(hours=3),
        reason="Quarterly upgrade",
    )
    windows.start_window(window.pk, now=starts)

    body = client_for(env_user).get(sign_in_url(environment)).content.decode()

    assert re.search(r'data-testid="turned-on-by">mona <span class="hint">via Scheduled', body)
    assert "Scheduled maintenance: Quarterly upgrade" in body
    assert re.search(rf'data-testid="ends">{window.ends_at:%Y-%m-%d %H:%M} ', body)


def test_refusal_page_links_back_to_the_environment_for_those_who_may_see_it(
    put_in, cast, environment
):
    put_in("in_maintenance")
    details = environment.get_absolute_url()

    member_body = client_for(cast["member"]).get(sign_in_url(environment)).content.decode()
    role_only_body = client_for(cast["env_user"]).get(sign_in_url(environment)).content.decode()

    assert f'<a href="{details}">Back to Demo sandbox</a>' in member_body
    # A user with an environment role but no project membership cannot open the details.
    assert details not in role_only_body
    assert f'<a href="{reverse("environment-list")}">Back to the environments</a>' in role_only_body
