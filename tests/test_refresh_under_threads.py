"""Reloading an environment is safe while other threads reload theirs.

gunicorn's threaded workers reload environments at once (a refused Maintain request
shows the live region of the environment as it is now). django-fsm-2's own reload lifts
the status field's protection for the whole class while it runs, so one thread could
meet the protection another had just put back: "Direct status modification is not
allowed", a 500 found by tests/test_races_http.py.
"""

import threading

import pytest
from django.db import connection

from environments.models import Environment


@pytest.mark.django_db(transaction=True)
def test_threads_reloading_environments_at_once_never_fail(environment):
    threads, rounds = 6, 150
    errors = []
    barrier = threading.Barrier(threads)

    def reload_many():
        instance = Environment.objects.get(pk=environment.pk)
        try:
            barrier.wait(timeout=10)
            for _ in range(rounds):
                instance.refresh_from_db()
                assert instance.status == environment.status
        except Exception as exc:
            errors.append(repr(exc))
        finally:
            connection.close()

    workers = [threading.Thread(target=reload_many) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert errors == []


def test_reload_still_refuses_direct_status_changes(environment):
    environment.refresh_from_db()
    with pytest.raises(AttributeError, match="Direct status modification is not allowed"):
        environment.status = "failed"
    environment.refresh_from_db(fields=["name"])
    assert environment.status == "deployed"
