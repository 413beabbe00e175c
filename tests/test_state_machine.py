"""The transitions on the model: which are allowed from which status, and for whom."""

import pytest
from django_fsm import TransitionNotAllowed

from environments.models import (
    Deployment,
    EnvironmentType,
    Status,
    Subscription,
)
from tests.conftest import make_environment

ACCESS = {"enable_access", "request_access"}


def available(environment, user):
    return {t.name for t in environment.get_available_user_status_transitions(user)}


def test_deployed_offers_restart_and_enable_maintenance_to_a_manager(environment, manager):
    assert available(environment, manager) == {"restart_service", "enable_maintenance"} | ACCESS


def test_team_member_is_offered_nothing(environment, member):
    assert available(environment, member) == set()


def test_outsider_is_offered_nothing(environment, outsider):
    assert available(environment, outsider) == set()


@pytest.mark.parametrize("who", ["owner", "manager", "superuser"])
def test_owners_managers_and_superusers_are_offered_maintain_actions(environment, users, who):
    assert "enable_maintenance" in available(environment, users[who])


def test_status_cannot_be_assigned_directly(environment):
    with pytest.raises(AttributeError):
        environment.status = Status.FAILED


def test_restart_moves_deployed_to_restarting_service(environment):
    environment.restart_service()
    assert environment.status == Status.RESTARTING_SERVICE


def test_enable_maintenance_moves_deployed_to_servicing(environment):
    environment.enable_maintenance()
    assert environment.status == Status.SERVICING


def test_disable_maintenance_is_not_possible_while_deployed(environment):
    with pytest.raises(TransitionNotAllowed):
        environment.disable_maintenance()


def test_nothing_is_offered_while_an_operation_runs(environment, manager):
    environment.restart_service()
    assert available(environment, manager) == set()


def test_in_maintenance_offers_only_disable_maintenance(environment, manager):
    environment.enable_maintenance()

    class Done:
        success_status = Status.IN_MAINTENANCE

    environment.complete(Done)
    assert environment.status == Status.IN_MAINTENANCE
    assert available(environment, manager) == {"disable_maintenance"} | ACCESS


def test_failed_offers_resume_rollback_and_abort(environment, manager):
    environment.restart_service()
    environment.fail()
    assert available(environment, manager) == {"resume", "rollback", "abort"} | ACCESS


@pytest.mark.parametrize(
    "fields, reason",
    [
        ({"tier": 1}, "it is Tier 1, not Tier 2 to 5"),
        ({"type": EnvironmentType.PRODUCTION}, "it is a production environment, not a sandbox"),
        ({"deployment": Deployment.LEGACY}, "it was not deployed through self-service"),
        (
            {"subscription": Subscription.CUSTOMER},
            "it is in a customer subscription, not a Microsoft one",
        ),
    ],
)
def test_restart_and_database_access_are_refused_on_ineligible_environments_with_the_reason(
    project, manager, fields, reason
):
    environment = make_environment(project, **fields)
    assert not {"restart_service", "enable_access", "request_access"} & available(
        environment, manager
    )
    assert reason in environment.sandbox_refusal_reason()
    assert environment.sandbox_refusal_reason().startswith(
        "Restart service and database access (Enable access, Request access) are available "
        "only for Tier 2 to 5 sandbox environments"
    )


@pytest.mark.parametrize("tier", [2, 3, 4, 5])
def test_restart_is_offered_on_tier_2_to_5_sandboxes(project, tier):
    assert make_environment(project, tier=tier).sandbox_refusal_reason() is None


def test_maintenance_mode_is_offered_on_production_environments(project, manager):
    environment = make_environment(project, tier=5, type=EnvironmentType.PRODUCTION)
    assert available(environment, manager) == {"enable_maintenance"}
