"""Sending from the outbox (models.Outbox: mails and webhook events): claim a row, try,
then either settle it or try again later with back-off.

Nothing here holds a transaction or a lock while it talks to a mail server or a
receiver: a claim is one conditional UPDATE, and a worker that dies mid-attempt only
delays the row until its claim lapses and the watchdog finds it again.
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from environments.models import DeliveryState

# How long a claimed row is left to its worker (DELIVERY_CLAIM_SECONDS), and how late a
# pending row must be to have lost its task (DELIVERY_OVERDUE_SECONDS), before the
# watchdog hands it out again: a worker killed while it posted leaves the row claimed.


def claim(model, pk, now=None):
    """The row if it is due and this caller got it first; None otherwise.

    Several tasks may hold the same row (a retry, a watchdog sweep, a resend): the
    conditional update lets exactly one of them send.
    """
    now = now or timezone.now()
    row = model.objects.filter(pk=pk, state=DeliveryState.PENDING, next_attempt_at__lte=now).first()
    if row is None:
        return None
    claimed = model.objects.filter(
        pk=pk, state=DeliveryState.PENDING, next_attempt_at=row.next_attempt_at
    ).update(next_attempt_at=now + timedelta(seconds=settings.DELIVERY_CLAIM_SECONDS))
    return row if claimed else None


def retry_delay(attempts):
    """The wait after the ``attempts``-th failure: the first delay, doubling, capped."""
    first = settings.DELIVERY_RETRY_FIRST_SECONDS
    return timedelta(seconds=min(first * 2 ** (attempts - 1), settings.DELIVERY_RETRY_MAX_SECONDS))


def settle(row, *, delivered, now, enqueue, fields=()):
    """Record an attempt's result on ``row`` and, when it failed and tries remain,
    schedule the next one (``enqueue(row, run_after)`` on commit)."""
    row.attempts += 1
    if delivered:
        row.state = DeliveryState.DELIVERED
        row.finished_at = now
    elif row.attempts >= settings.DELIVERY_MAX_ATTEMPTS:
        row.state = DeliveryState.FAILED
        row.finished_at = now
    else:
        row.next_attempt_at = now + retry_delay(row.attempts)
    with transaction.atomic():
        row.save(update_fields=["attempts", "state", "finished_at", "next_attempt_at", *fields])
        if row.state == DeliveryState.PENDING:
            run_after = row.next_attempt_at
            transaction.on_commit(lambda: enqueue(row, run_after))


def send_again(model, pk, enqueue, now=None):
    """Make a row due now (a resend from the admin), whatever its state."""
    now = now or timezone.now()
    with transaction.atomic():
        model.objects.filter(pk=pk).update(
            state=DeliveryState.PENDING, next_attempt_at=now, finished_at=None
        )
        row = model.objects.get(pk=pk)
        transaction.on_commit(lambda: enqueue(row, None))
    return row


def hand_out_overdue(model, enqueue, now=None):
    """The watchdog: enqueue again the pending rows whose task was lost. Each row it
    hands out is made due now, so the next sweep leaves it to that task."""
    now = now or timezone.now()
    overdue = timedelta(seconds=settings.DELIVERY_OVERDUE_SECONDS)
    late = model.objects.filter(state=DeliveryState.PENDING, next_attempt_at__lte=now - overdue)
    handed = []
    for pk, due in late.values_list("pk", "next_attempt_at")[:500]:
        if model.objects.filter(pk=pk, next_attempt_at=due).update(next_attempt_at=now):
            row = model(pk=pk)
            enqueue(row, None)
            handed.append(pk)
    return handed
