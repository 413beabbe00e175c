"""The demo's simulated-failure file (SIMULATED_DRIVER_FAIL_FILE) takes the API's action
names as well as the driver's, and says which of its lines match nothing."""

import logging

from environments.drivers.simulated import read_failures
from environments.models import OperationKind, Status
from tests.conftest import run_worker

ENABLE = OperationKind.ENABLE_MAINTENANCE
DISABLE = OperationKind.DISABLE_MAINTENANCE


def settle(kind, environment, user, start):
    start(kind, environment, user)
    run_worker()
    environment.refresh_from_db()
    return environment.status


def test_enable_maintenance_fails_turning_it_on_and_nothing_else(
    environment, owner, start, fail_driver
):
    fail_driver(f"{environment.slug} enable_maintenance")

    assert settle(ENABLE, environment, owner, start) == Status.FAILED


def test_disable_maintenance_fails_turning_it_off_only(environment, owner, start, fail_driver):
    fail_driver(f"{environment.slug} disable_maintenance")

    assert settle(ENABLE, environment, owner, start) == Status.IN_MAINTENANCE
    assert settle(DISABLE, environment, owner, start) == Status.FAILED


def test_the_drivers_own_names_and_comments_still_work(environment, fail_driver):
    fail_driver("# try a failed restart", f"{environment.slug} restart_service  # for the demo")

    assert read_failures() == ([(environment.slug, "restart_service")], [])


def test_lines_that_match_nothing_are_named_when_the_file_is_read(
    environment, owner, start, fail_driver, caplog
):
    fail_driver(
        f"{environment.slug} enable-maintenance",
        "no-such-sandbox restart_service",
        f"{environment.slug}",
        "* disable_maintenance",
    )

    failures, problems = read_failures()

    assert failures == [("*", "disable_maintenance")]
    assert (
        "line 1 ('demo-sandbox enable-maintenance') matches nothing: the action is" in (problems[0])
    )
    assert (
        "line 2 ('no-such-sandbox restart_service') matches nothing: there is no " in (problems[1])
    )
    assert (
        "line 3 ('demo-sandbox') matches nothing: write '<environment slug> <action>'"
        in (problems[2])
    )
    with caplog.at_level(logging.WARNING, logger="environments.drivers.simulated"):
        assert settle(ENABLE, environment, owner, start) == Status.IN_MAINTENANCE
    assert "line 1 ('demo-sandbox enable-maintenance') matches nothing" in caplog.text
