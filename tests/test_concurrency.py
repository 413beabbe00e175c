"""Concurrent requests cannot start two operations on one environment.

Runs on whichever database the suite runs on: on PostgreSQL the environment row lock
decides, on SQLite the IMMEDIATE write lock; the partial unique index backs both. The
row lock itself is seen on PostgreSQL only (the last two tests): the index cannot stand
in for it when the first operation leaves the running state before it commits, as
Abort does.
"""

import threading

import pytest
from django.db import DatabaseError, connection, transaction

from environments import operations
from environments.models import Environment, Operation, OperationKind, Status
from tests.live import wait_for


@pytest.mark.django_db(transaction=True)
def test_twenty_simultaneous_starts_start_exactly_one(environment, manager):
    attempts = 20
    barrier = threading.Barrier(attempts)
    results = []
    lock = threading.Lock()

    def attempt(i):
        kind, kwargs = (
            (OperationKind.RESTART_SERVICE, {"service_kind": ["aos", "dixf", "mr"][i % 3]})
            if i % 2
            else (OperationKind.ENABLE_MAINTENANCE, {})
        )
        try:
            barrier.wait(timeout=10)
            operations.START_FUNCTIONS[kind](environment, manager, **kwargs)
            outcome = "started"
        except operations.OperationRefused as refused:
            outcome = refused.code
        finally:
            connection.close()
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(results) == ["busy"] * (attempts - 1) + ["started"]
    assert Operation.objects.count() == 1
    environment.refresh_from_db()
    assert environment.status in (Status.RESTARTING_SERVICE, Status.SERVICING)


# --- The environment row lock (PostgreSQL: on SQLite select_for_update locks nothing) ---

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="row locks exist on PostgreSQL only; the PostgreSQL run of `make test` runs this",
)
ABORT, RESUME = OperationKind.ABORT, OperationKind.RESUME
#: How long a thread waits for the others at most: far longer than any run takes, so
#: it ends a wait only when the test itself has failed.
GUARD_SECONDS = 60


@pytest.fixture
def failed(environment, manager):
    """The environment Failed by a restart; Abort and Resume are both on offer."""
    operation = operations.restart_service(environment, manager, "aos")
    operations.fail_operation(operation.pk, "AOS did not come back")
    environment.refresh_from_db()
    assert environment.status == Status.FAILED
    return operation


def in_another_connection(function, *args):
    """``function(*args)`` on a connection of its own (a thread's), and its result."""
    results = []

    def run():
        try:
            results.append(function(*args))
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=GUARD_SECONDS)
    return results[0]


def try_to_lock(environment_pk):
    try:
        with transaction.atomic():
            Environment.objects.select_for_update(nowait=True).get(pk=environment_pk)
    except DatabaseError:
        return "locked"
    return "free"


def blocking_pids(pid):
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_blocking_pids(%s)", [pid])
        return cursor.fetchone()[0]


@pytest.mark.postgres
@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_abort_and_resume_racing_on_one_failed_environment_start_exactly_one(
    environment, manager, failed, monkeypatch
):
    """Abort is held inside its start, its checks passed, until Resume has either been
    seen waiting for Abort's lock on the environment row (as it must) or has passed its
    own checks as well (the race the lock prevents). Then Abort goes on, and Resume
    after it: it finds the environment Deployed again."""
    checked = {kind: threading.Event() for kind in (ABORT, RESUME)}
    abort_go_on, abort_done = threading.Event(), threading.Event()
    pids, results = {}, {}
    check_allowed = operations.check_allowed

    def check_allowed_then_hold(locked, user, kind):
        check_allowed(locked, user, kind)
        checked[kind].set()
        (abort_go_on if kind == ABORT else abort_done).wait(timeout=GUARD_SECONDS)

    monkeypatch.setattr(operations.core, "check_allowed", check_allowed_then_hold)

    def attempt(kind):
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                pids[kind] = cursor.fetchone()[0]
            operations.START_FUNCTIONS[kind](environment, manager, reason="race")
            results[kind] = "started"
        except operations.OperationRefused as refused:
            results[kind] = refused.code
        except Exception as exc:  # recorded: the assertion shows it
            results[kind] = repr(exc)
        finally:
            if kind == ABORT:
                abort_done.set()
            connection.close()

    threads = {kind: threading.Thread(target=attempt, args=(kind,)) for kind in (ABORT, RESUME)}
    threads[ABORT].start()
    assert checked[ABORT].wait(timeout=GUARD_SECONDS), results
    threads[RESUME].start()

    def resume_waits_for_abort():
        return RESUME in pids and pids[ABORT] in blocking_pids(pids[RESUME])

    assert wait_for(lambda: resume_waits_for_abort() or checked[RESUME].is_set(), GUARD_SECONDS)
    resume_passed_its_checks_beside_abort = checked[RESUME].is_set()
    abort_go_on.set()
    for thread in threads.values():
        thread.join(timeout=GUARD_SECONDS)

    assert not resume_passed_its_checks_beside_abort, results
    assert results[ABORT] == "started"
    assert results[RESUME] in ("busy", "not_allowed"), results
    assert Operation.objects.exclude(pk=failed.pk).get().kind == ABORT
    environment.refresh_from_db()
    assert environment.status == Status.DEPLOYED


@pytest.mark.postgres
@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_starting_an_operation_holds_its_environment_row_locked_until_it_commits(
    environment, manager, monkeypatch
):
    """Another connection asking for the row without waiting (NOWAIT) is refused while
    the start checks what may start, and gets it once the start has committed."""
    seen_while_checking = []
    check_allowed = operations.check_allowed

    def check_allowed_and_look(locked, user, kind):
        check_allowed(locked, user, kind)
        seen_while_checking.append(in_another_connection(try_to_lock, locked.pk))

    monkeypatch.setattr(operations.core, "check_allowed", check_allowed_and_look)

    operations.restart_service(environment, manager, "aos")

    assert seen_while_checking == ["locked"]
    assert in_another_connection(try_to_lock, environment.pk) == "free"


def locks_taken_removing_a_rule(environment, manager):
    """The statements that take row locks (FOR UPDATE) while a firewall rule is removed."""
    from django.test.utils import CaptureQueriesContext

    from environments import operations
    from environments.models import FirewallRule

    operations.enable_access(
        environment, manager, name="office", cidr="203.0.113.7/32", reason="support"
    )
    rule = FirewallRule.objects.get()
    with CaptureQueriesContext(connection) as queries:
        operations.remove_access(rule, manager)
    return [q["sql"] for q in queries.captured_queries if "FOR UPDATE" in q["sql"]]


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks exist on PostgreSQL only")
def test_ending_a_grant_locks_the_environment_before_the_grant(environment, manager):
    """Finishing an operation locks the environment, then settles its grant: ending a
    grant takes the same order, or a Remove beside a worker settling the rule deadlocks
    (PostgreSQL answered "deadlock detected" to Schemathesis's DELETE)."""
    locks = locks_taken_removing_a_rule(environment, manager)
    assert '"environments_environment"' in locks[0].split("FROM")[1].split("WHERE")[0]
    assert '"environments_firewallrule"' in locks[1].split("FROM")[1].split("WHERE")[0]


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks exist on PostgreSQL only")
def test_ending_a_grant_locks_no_project_row(environment, manager):
    """A lock that reaches the project's row (FOR UPDATE over a join with it) makes every
    change on its environments wait, and deadlocked a role change in admin with a worker
    committing on another environment of the project (found by the soak)."""
    locks = locks_taken_removing_a_rule(environment, manager)
    assert locks
    assert not [sql for sql in locks if '"environments_project"' in sql], locks
