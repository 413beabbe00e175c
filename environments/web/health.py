"""/healthz: for load balancers and monitoring (docs/deploy.md).

200 with the task queue's facts while the database answers, 503 when it does not. No
session, no user and no template: a load balancer asks every few seconds, and a check
must not fail because of what it does not test.
"""

from django.db import DatabaseError
from django.db.models import Count, Min, Value
from django.db.models.functions import Coalesce, NullIf
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from django_tasks_db.models import DBTaskResult, get_date_max

from environments.models import Operation


@never_cache
@require_safe
def healthz(request):
    now = timezone.now()
    try:
        # One statement over the ready tasks (their partial index): how many, and since
        # when the oldest has been due. A task to run at once carries the far-future
        # sentinel as run_after and is due since it was enqueued.
        queue = DBTaskResult.objects.ready().aggregate(
            ready=Count("pk"),
            oldest_due=Min(Coalesce(NullIf("run_after", Value(get_date_max())), "enqueued_at")),
        )
        # Operations whose worker died wait here until a deadline task or the watchdog
        # fails them; more than none for minutes means neither runs.
        overdue = Operation.objects.active().filter(deadline__lt=now).count()
    except DatabaseError as exc:
        return JsonResponse(
            {"status": "unavailable", "database": "unreachable", "error": type(exc).__name__},
            status=503,
        )
    oldest_due = queue["oldest_due"]
    age = max(0.0, (now - oldest_due).total_seconds()) if oldest_due else 0.0
    return JsonResponse(
        {
            "status": "ok",
            "database": "ok",
            "tasks_ready": queue["ready"],
            "oldest_ready_task_age_seconds": round(age, 1),
            "operations_past_deadline": overdue,
        }
    )
