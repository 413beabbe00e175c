"""Concurrent requests cannot start two operations on one environment.

Runs on whichever database the suite runs on: on PostgreSQL the environment row lock
decides, on SQLite the IMMEDIATE write lock; the partial unique index backs both.
"""

import threading

import pytest
from django.db import connection

from environments import operations
from environments.models import Operation, OperationKind, Status


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
