"""Scale data for benchmarks: many projects, environments, services, roles and years of
history, written in bulk.

It refuses to run twice: the seeded projects' slugs start with ``scale-``, and if any
exists the command stops without writing (drop the database to seed again). One user,
``scale-admin``, is an Environment manager in every seeded project and a System
administrator on every seeded environment, so a benchmark can see all of it.

History is a walk of each environment's state machine over the years (restarts,
maintenance mode on and off, failures followed by Resume, Rollback or Abort, role
changes), so every environment's status agrees with its latest operation. Rows are
written oldest first, as a real portal writes them. On PostgreSQL they go in with COPY;
elsewhere with bulk_create.
"""

import heapq
import json
import math
import random
import time
import uuid
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils import timezone

from environments.models import (
    Deployment,
    Environment,
    EnvironmentRole,
    EnvironmentRoleKind,
    EnvironmentType,
    Operation,
    OperationKind,
    Outcome,
    Project,
    ProjectMembership,
    ProjectRole,
    Service,
    ServiceKind,
    ServiceState,
    Status,
    Subscription,
)

PREFIX = "scale-"
ADMIN_USERNAME = "scale-admin"
ENVIRONMENTS_PER_PROJECT = 20
USERS_PER_PROJECT = 5
ROLES_PER_ENVIRONMENT = 5
DEADLINE = timedelta(seconds=300)
FAILURE_RATE = 0.06

REASONS = [
    "",
    "",
    "Weekly patching",
    "Stuck batch jobs",
    "Data import hangs",
    "Release deployment",
    "Performance issue reported by users",
    "Month-end close preparation",
    "Customer escalation",
]
ERRORS = [
    "The service did not answer its health check within 120 seconds.",
    "The environment's deployment agent timed out.",
    "Maintenance mode could not be set: the configuration database is locked.",
]

# The columns COPY writes, in order (Operation's concrete fields).
OPERATION_FIELDS = [field for field in Operation._meta.concrete_fields]


class Command(BaseCommand):
    help = (
        "Fill the database with scale data: projects, environments, services, roles and "
        "history (refuses to run twice)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--environments", type=int, default=1000)
        parser.add_argument("--history", type=int, default=1_000_000)
        parser.add_argument("--years", type=float, default=3.0)
        parser.add_argument("--batch", type=int, default=10_000)
        parser.add_argument("--seed", type=int, default=8, help="Random seed (repeatable data).")

    def handle(self, *args, environments, history, years, batch, seed, **options):
        if environments < 1 or history < 0:
            raise CommandError("Give at least one environment and no negative history.")
        if Project.objects.filter(slug__startswith=PREFIX).exists():
            raise CommandError(
                "Scale data is already seeded here (projects named scale-*); refusing to seed "
                "twice. Drop the database to seed again."
            )
        self.random = random.Random(seed)
        started = time.monotonic()
        with transaction.atomic():
            environment_ids, services, requesters = self._structure(environments)
            self._log(started, f"{environments} environments with services and roles")
            written, finals, restarts = self._history(
                environment_ids, services, requesters, history, years, batch, started
            )
            self._settle(finals, restarts)
        if connection.vendor == "postgresql":
            # Fresh statistics, or the planner guesses at a million rows it has not seen.
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        self._log(started, f"done: {written} history rows")

    def _log(self, started, message):
        self.stdout.write(f"[{time.monotonic() - started:6.1f} s] {message}")

    # --- Projects, users, environments, services, roles --------------------------------

    def _structure(self, count):
        rnd = self.random
        User = get_user_model()
        project_count = math.ceil(count / ENVIRONMENTS_PER_PROJECT)
        projects = Project.objects.bulk_create(
            Project(name=f"Scale project {p:04d}", slug=f"{PREFIX}project-{p:04d}")
            for p in range(1, project_count + 1)
        )
        admin = User(username=ADMIN_USERNAME, email="scale-admin@example.com")
        admin.set_unusable_password()
        users = [admin]
        for n in range(1, project_count * USERS_PER_PROJECT + 1):
            user = User(username=f"{PREFIX}user-{n:05d}")
            user.set_unusable_password()
            users.append(user)
        User.objects.bulk_create(users)
        users = {u.username: u for u in User.objects.filter(username__startswith=PREFIX)}
        admin = users[ADMIN_USERNAME]

        memberships = []
        project_staff = {}  # project index: [user ids who may maintain]
        project_users = {}
        roles = [ProjectRole.OWNER, ProjectRole.MANAGER, ProjectRole.MANAGER]
        roles += [ProjectRole.MEMBER] * (USERS_PER_PROJECT - len(roles))
        for p, project in enumerate(projects):
            staff = [admin.pk]
            members = []
            for i, role in enumerate(roles):
                user = users[f"{PREFIX}user-{p * USERS_PER_PROJECT + i + 1:05d}"]
                memberships.append(ProjectMembership(user=user, project=project, role=role))
                members.append(user.pk)
                if role != ProjectRole.MEMBER:
                    staff.append(user.pk)
            memberships.append(
                ProjectMembership(user=admin, project=project, role=ProjectRole.MANAGER)
            )
            project_staff[p] = staff
            project_users[p] = members
        ProjectMembership.objects.bulk_create(memberships)

        environments = []
        for n in range(1, count + 1):
            sandbox = rnd.random() < 0.8
            environments.append(
                Environment(
                    name=f"Scale environment {n:05d}",
                    slug=f"{PREFIX}env-{n:05d}",
                    project=projects[(n - 1) // ENVIRONMENTS_PER_PROJECT],
                    tier=rnd.choice([1, 2, 2, 3, 3, 4, 5]) if sandbox else 5,
                    type=EnvironmentType.SANDBOX if sandbox else EnvironmentType.PRODUCTION,
                    subscription=(
                        Subscription.MICROSOFT if rnd.random() < 0.85 else Subscription.CUSTOMER
                    ),
                    deployment=(
                        Deployment.SELF_SERVICE if rnd.random() < 0.9 else Deployment.LEGACY
                    ),
                    url=f"https://{PREFIX}env-{n:05d}.sandbox.operations.example.com/",
                    database_name=f"scale_env_{n:05d}",
                )
            )
        Environment.objects.bulk_create(environments, batch_size=1000)
        environments = list(
            Environment.objects.filter(slug__startswith=PREFIX)
            .order_by("slug")
            .only("pk", "tier", "type", "subscription", "deployment", "project_id")
        )
        Service.objects.bulk_create(
            (Service(environment=e, kind=kind) for e in environments for kind in ServiceKind),
            batch_size=5000,
        )
        services = {}
        for pk, environment_id, kind in Service.objects.filter(
            environment__slug__startswith=PREFIX
        ).values_list("pk", "environment_id", "kind"):
            services.setdefault(environment_id, {})[kind] = pk

        environment_roles = []
        role_kinds = [
            EnvironmentRoleKind.MAINTENANCE_MODE_USER,
            EnvironmentRoleKind.USER,
            EnvironmentRoleKind.USER,
            EnvironmentRoleKind.SYSTEM_ADMINISTRATOR,
        ]
        requesters = {}
        for index, environment in enumerate(environments):
            p = index // ENVIRONMENTS_PER_PROJECT
            environment_roles.append(
                EnvironmentRole(
                    user=admin,
                    environment=environment,
                    role=EnvironmentRoleKind.SYSTEM_ADMINISTRATOR,
                )
            )
            chosen = rnd.sample(project_users[p], min(ROLES_PER_ENVIRONMENT - 1, USERS_PER_PROJECT))
            for user_id, role in zip(chosen, role_kinds, strict=False):
                environment_roles.append(
                    EnvironmentRole(user_id=user_id, environment=environment, role=role)
                )
            requesters[environment.pk] = (project_staff[p], environment)
        EnvironmentRole.objects.bulk_create(environment_roles, batch_size=5000)
        return [e.pk for e in environments], services, requesters

    # --- History -------------------------------------------------------------------------

    def _history(self, environment_ids, services, requesters, total, years, batch, started):
        now = timezone.now().replace(microsecond=0)
        first = now - timedelta(days=365 * years)
        per_environment = [total // len(environment_ids)] * len(environment_ids)
        for i in range(total % len(environment_ids)):
            per_environment[i] += 1
        walks = [
            self._walk(
                environment_id,
                count,
                first,
                now,
                services[environment_id],
                requesters[environment_id],
                random.Random(self.random.random()),
            )
            for environment_id, count in zip(environment_ids, per_environment, strict=True)
            if count
        ]
        # Oldest first across all environments, as the portal would have written them.
        ordered = heapq.merge(*walks, key=lambda row: row["started_at"])
        next_id = (Operation.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
        finals = {}
        restarts = {}

        def numbered():
            nonlocal next_id
            for row in ordered:
                row["id"] = next_id
                next_id += 1
                finals[row["environment_id"]] = row
                if row["action"] == OperationKind.RESTART_SERVICE:
                    restarts[row["service_id"]] = row
                yield row

        written = 0
        if connection.vendor == "postgresql":
            written = self._copy(numbered(), started, total)
        else:
            chunk = []
            for row in numbered():
                chunk.append(Operation(**row))
                if len(chunk) >= batch:
                    Operation.objects.bulk_create(chunk)
                    written += len(chunk)
                    chunk = []
            Operation.objects.bulk_create(chunk)
            written += len(chunk)
        with connection.cursor() as cursor:
            for sql in connection.ops.sequence_reset_sql(self.style, [Operation]):
                cursor.execute(sql)
        return written, finals, restarts

    def _copy(self, rows, started, total):
        columns = [field.column for field in OPERATION_FIELDS]
        # A field the walk does not set gets its default, as bulk_create would give it.
        defaults = {field.attname: field.get_default() for field in OPERATION_FIELDS}
        table = Operation._meta.db_table
        written = 0
        connection.ensure_connection()
        with connection.connection.cursor() as cursor:
            sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
            with cursor.copy(sql) as copy:
                for row in rows:
                    values = [row.get(name, default) for name, default in defaults.items()]
                    # JSON columns (the step's memo) go in as their text.
                    copy.write_row([json.dumps(v) if isinstance(v, dict) else v for v in values])
                    written += 1
                    if written % 200_000 == 0:
                        self._log(started, f"{written}/{total} history rows")
        return written

    def _walk(self, environment_id, count, first, now, services, requesters, rnd):
        """One environment's history, oldest first: a walk of the state machine."""
        staff, environment = requesters
        restartable = environment.is_sandbox_eligible()
        span = (now - first).total_seconds() - 3600
        offsets = sorted(rnd.random() * span for _ in range(count))
        status = Status.DEPLOYED
        failed = None  # the failed operation's row, while the environment is Failed
        previous_end = first
        for offset in offsets:
            started_at = max(first + timedelta(seconds=offset), previous_end + timedelta(seconds=1))
            started_at = started_at.replace(microsecond=rnd.randrange(1_000_000))
            row = {
                "activity_id": uuid.UUID(int=rnd.getrandbits(128), version=4),
                "environment_id": environment_id,
                "target": "",
                "undo": False,
                "failed_operation_id": None,
                "service_id": None,
                "requested_by_id": rnd.choice(staff),
                "reason": rnd.choice(REASONS),
                "started_at": started_at,
                "deadline": started_at + DEADLINE,
                "status_before": status,
                "error": "",
                "log": "",
                "firewall_rule_id": None,
                "database_account_id": None,
            }
            succeeded = rnd.random() > FAILURE_RATE
            if failed is not None:
                kind = rnd.choice(
                    [OperationKind.RESUME, OperationKind.ROLLBACK, OperationKind.ROLLBACK]
                    + [OperationKind.ABORT]
                )
                action = failed["action"]
                row.update(
                    kind=kind,
                    action=action,
                    failed_operation_id=failed["id"],
                    service_id=failed["service_id"],
                    undo=kind == OperationKind.ROLLBACK or failed["undo"],
                    return_status=failed["return_status"],
                )
                if kind == OperationKind.ABORT:
                    succeeded = True
                    done = failed["return_status"]
                    seconds = 0
                elif row["undo"]:
                    done = failed["return_status"]
                    seconds = rnd.randint(20, 600)
                else:
                    done = _done_status(action, failed["return_status"])
                    seconds = rnd.randint(20, 600)
            else:
                choices = [OperationKind.GRANT_ROLE, OperationKind.REMOVE_ROLE] * 2
                if status == Status.DEPLOYED:
                    choices += [OperationKind.ENABLE_MAINTENANCE] * 2
                    if restartable:
                        choices += [OperationKind.RESTART_SERVICE] * 12
                else:
                    # Maintenance windows are short: mostly the next action ends them.
                    choices += [OperationKind.DISABLE_MAINTENANCE] * 30
                kind = action = rnd.choice(choices)
                row.update(kind=kind, action=action, return_status=status)
                if kind in (OperationKind.GRANT_ROLE, OperationKind.REMOVE_ROLE):
                    succeeded = True
                    seconds = 0
                    done = status
                    row["target"] = f"{PREFIX}user-{rnd.randint(1, 99999):05d}: User"
                else:
                    if kind == OperationKind.RESTART_SERVICE:
                        row["service_id"] = services[rnd.choice(ServiceKind.values)]
                    done = _done_status(action, status)
                    seconds = rnd.randint(20, 900)
            finished_at = started_at + timedelta(seconds=seconds, microseconds=rnd.randrange(10**6))
            if succeeded:
                outcome = (
                    Outcome.ABORTED
                    if row["kind"] == OperationKind.ABORT
                    else Outcome.ROLLED_BACK
                    if row["undo"]
                    else Outcome.SUCCEEDED
                )
                status_after = done
                log = "" if seconds == 0 else f"Performed {OperationKind(action).label}."
                failed = None
            else:
                outcome = Outcome.FAILED
                status_after = Status.FAILED
                log = f"Performing {OperationKind(action).label}\nError."
                row["error"] = rnd.choice(ERRORS)
            row.update(outcome=outcome, finished_at=finished_at, status_after=status_after, log=log)
            if outcome == Outcome.FAILED:
                failed = row
            status = status_after
            previous_end = finished_at
            yield row

    # --- Statuses that agree with the history ---------------------------------------------

    def _settle(self, finals, restarts):
        environments = []
        for environment_id, row in finals.items():
            environment = Environment(pk=environment_id)
            # The status field is protected against assignment; write it in bulk instead.
            environment.__dict__["status"] = row["status_after"]
            environment.status_changed_at = row["finished_at"]
            environments.append(environment)
        Environment.objects.bulk_update(environments, ["status", "status_changed_at"], 1000)
        services = []
        for service_id, row in restarts.items():
            service = Service(pk=service_id)
            if row["outcome"] == Outcome.FAILED:
                service.state = ServiceState.FAILED
            else:
                service.state = ServiceState.RUNNING
                service.last_restarted_at = row["finished_at"]
            services.append(service)
        Service.objects.bulk_update(services, ["state", "last_restarted_at"], 1000)


def _done_status(action, before):
    if action == OperationKind.RESTART_SERVICE:
        return Status.DEPLOYED
    if action == OperationKind.ENABLE_MAINTENANCE:
        return Status.IN_MAINTENANCE
    if action == OperationKind.DISABLE_MAINTENANCE:
        return Status.DEPLOYED
    return before
