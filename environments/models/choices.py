"""The values the portal's data takes, each with its label and, for statuses, the
badge colour beside it; and one table of what each kind of operation is."""

from django.db import models


class ProjectRole(models.TextChoices):
    OWNER = "owner", "Project owner"
    MANAGER = "manager", "Environment manager"
    MEMBER = "member", "Project team member"


#: Project roles that may run Maintain actions (superusers may too).
MAINTAIN_ROLES = frozenset({ProjectRole.OWNER, ProjectRole.MANAGER})

#: What a project role allows, as the role forms say it.
PROJECT_ROLE_HELP = (
    "Decides who may maintain. Project owners and Environment managers may run the "
    "Maintain actions (restart a service, maintenance mode, firewall and database access) "
    "on every environment of the project; Project team members see its environments and "
    "history only. Signing in to an environment is the environment role's."
)


class RoleSource(models.TextChoices):
    """Who made a role row: an admin (Django admin, the shell, the demo) or the identity
    provider's groups at sign-in. The provider never changes or removes an admin's row."""

    ADMIN = "admin", "Admin"
    PROVIDER = "provider", "Identity provider"


class EnvironmentType(models.TextChoices):
    SANDBOX = "sandbox", "Sandbox"
    PRODUCTION = "production", "Production"


class Subscription(models.TextChoices):
    MICROSOFT = "microsoft", "Microsoft"
    CUSTOMER = "customer", "Customer"


class Deployment(models.TextChoices):
    SELF_SERVICE = "self_service", "Self-service"
    LEGACY = "legacy", "Legacy"


class Status(models.TextChoices):
    DEPLOYED = "deployed", "Deployed"
    RESTARTING_SERVICE = "restarting_service", "Restarting service"
    SERVICING = "servicing", "Servicing"
    IN_MAINTENANCE = "in_maintenance", "In Maintenance"
    FAILED = "failed", "Failed"


STATUS_BADGE = {
    Status.DEPLOYED: "green",
    Status.RESTARTING_SERVICE: "blue",
    Status.SERVICING: "blue",
    Status.IN_MAINTENANCE: "amber",
    Status.FAILED: "red",
}

#: Statuses in which an operation is running: nothing else may start.
RUNNING_STATUSES = (Status.RESTARTING_SERVICE, Status.SERVICING)
#: Statuses in which maintenance mode keeps users out; so does Failed out of a
#: maintenance action (see Environment.maintenance_mode).
MAINTENANCE_STATUSES = (Status.SERVICING, Status.IN_MAINTENANCE)


class ServiceKind(models.TextChoices):
    AOS = "aos", "AOS service"
    DIXF = "dixf", "DIXF (Data import export framework service)"
    MR = "mr", "MR (Management Reporter service)"


class ServiceState(models.TextChoices):
    RUNNING = "running", "Running"
    RESTARTING = "restarting", "Restarting"
    FAILED = "failed", "Failed"
    # Its health check did not pass (environments.operations.health).
    STOPPED = "stopped", "Stopped"


SERVICE_BADGE = {
    ServiceState.RUNNING: "green",
    ServiceState.RESTARTING: "blue",
    ServiceState.FAILED: "red",
    ServiceState.STOPPED: "red",
}


class EnvironmentRoleKind(models.TextChoices):
    SYSTEM_ADMINISTRATOR = "system_administrator", "System administrator"
    MAINTENANCE_MODE_USER = "maintenance_mode_user", "Maintenance mode user"
    USER = "user", "User"


#: What an environment role allows, as the role forms say it.
ENVIRONMENT_ROLE_HELP = (
    "Decides who may sign in to the environment. Every role may sign in normally; while "
    "maintenance mode is on (Servicing, In Maintenance, or Failed out of a maintenance "
    "operation) only System administrators and Maintenance mode users may. It gives no "
    "right to Maintain: that is the project role's."
)

#: Environment roles that may still sign in while maintenance mode is on.
MAINTENANCE_SIGN_IN_ROLES = (
    EnvironmentRoleKind.SYSTEM_ADMINISTRATOR,
    EnvironmentRoleKind.MAINTENANCE_MODE_USER,
)


class OperationKind(models.TextChoices):
    RESTART_SERVICE = "restart_service", "Restart service"
    ENABLE_MAINTENANCE = "enable_maintenance", "Enable Maintenance mode"
    DISABLE_MAINTENANCE = "disable_maintenance", "Disable Maintenance mode"
    RESUME = "resume", "Resume"
    ROLLBACK = "rollback", "Rollback"
    ABORT = "abort", "Abort"
    ENABLE_ACCESS = "enable_access", "Enable access"
    REMOVE_ACCESS = "remove_access", "Remove access"
    REQUEST_ACCESS = "request_access", "Request access"
    REVOKE_ACCESS = "revoke_access", "Revoke access"
    GRANT_ROLE = "grant_role", "Environment role given"
    CHANGE_ROLE = "change_role", "Environment role changed"
    REMOVE_ROLE = "remove_role", "Environment role removed"
    GRANT_PROJECT_ROLE = "grant_project_role", "Project role given"
    CHANGE_PROJECT_ROLE = "change_project_role", "Project role changed"
    REMOVE_PROJECT_ROLE = "remove_project_role", "Project role removed"
    SCHEDULE_WINDOW = "schedule_window", "Maintenance window scheduled"
    CANCEL_WINDOW = "cancel_window", "Maintenance window cancelled"


class KindType(models.TextChoices):
    """The History's Type column, as Lifecycle Services' History has one."""

    MAINTENANCE = "maintenance", "Maintenance"
    RECOVERY = "recovery", "Recovery"
    ACCESS = "access", "Access"
    ROLE = "role", "Role"
    WINDOW = "window", "Maintenance window"


#: What each kind of operation is, in one table: its type in the History; for the Maintain
#: actions, the status the environment shows while it runs and the one it reaches when
#: done; and whether it ends a grant (ending access is never held up by a running
#: operation).
KINDS = {
    # kind: (type, running status, done status, ends a grant)
    OperationKind.RESTART_SERVICE: (
        KindType.MAINTENANCE,
        Status.RESTARTING_SERVICE,
        Status.DEPLOYED,
        False,
    ),
    OperationKind.ENABLE_MAINTENANCE: (
        KindType.MAINTENANCE,
        Status.SERVICING,
        Status.IN_MAINTENANCE,
        False,
    ),
    OperationKind.DISABLE_MAINTENANCE: (
        KindType.MAINTENANCE,
        Status.SERVICING,
        Status.DEPLOYED,
        False,
    ),
    OperationKind.RESUME: (KindType.RECOVERY, None, None, False),
    OperationKind.ROLLBACK: (KindType.RECOVERY, None, None, False),
    OperationKind.ABORT: (KindType.RECOVERY, None, None, False),
    OperationKind.ENABLE_ACCESS: (KindType.ACCESS, None, None, False),
    OperationKind.REMOVE_ACCESS: (KindType.ACCESS, None, None, True),
    OperationKind.REQUEST_ACCESS: (KindType.ACCESS, None, None, False),
    OperationKind.REVOKE_ACCESS: (KindType.ACCESS, None, None, True),
    OperationKind.GRANT_ROLE: (KindType.ROLE, None, None, False),
    OperationKind.CHANGE_ROLE: (KindType.ROLE, None, None, False),
    OperationKind.REMOVE_ROLE: (KindType.ROLE, None, None, False),
    OperationKind.GRANT_PROJECT_ROLE: (KindType.ROLE, None, None, False),
    OperationKind.CHANGE_PROJECT_ROLE: (KindType.ROLE, None, None, False),
    OperationKind.REMOVE_PROJECT_ROLE: (KindType.ROLE, None, None, False),
    OperationKind.SCHEDULE_WINDOW: (KindType.WINDOW, None, None, False),
    OperationKind.CANCEL_WINDOW: (KindType.WINDOW, None, None, False),
}


def kinds_of(*types):
    return tuple(kind for kind, (kind_type, *_) in KINDS.items() if kind_type in types)


# The groups the code asks about, read from the table.
#: The Maintain actions that move the environment's status; Resume, Rollback and Abort
#: act on one of these.
ACTIONS = kinds_of(KindType.MAINTENANCE)
RECOVERY_KINDS = kinds_of(KindType.RECOVERY)
#: The operations that move the environment's status: the actions and their recovery.
#: The latest of these is the one a Failed environment failed in; access grants and role
#: changes, which leave the status alone, never stand in for it.
MAINTAIN_KINDS = kinds_of(KindType.MAINTENANCE, KindType.RECOVERY)
ACCESS_KINDS = kinds_of(KindType.ACCESS)
ROLE_KINDS = kinds_of(KindType.ROLE)
WINDOW_KINDS = kinds_of(KindType.WINDOW)
#: Rows written already finished: a record of a change made (a role given, a window
#: scheduled), never an operation that runs.
RECORD_KINDS = (*ROLE_KINDS, *WINDOW_KINDS)
KIND_TYPE = {kind: KindType(facts[0]).label for kind, facts in KINDS.items()}
END_GRANT_KINDS = tuple(kind for kind, facts in KINDS.items() if facts[3])
ACTION_RUNNING_STATUS = {kind: facts[1] for kind, facts in KINDS.items() if facts[1]}
ACTION_DONE_STATUS = {kind: facts[2] for kind, facts in KINDS.items() if facts[2]}
#: The actions that turn maintenance mode on or off.
MAINTENANCE_ACTIONS = (OperationKind.ENABLE_MAINTENANCE, OperationKind.DISABLE_MAINTENANCE)


def keeps_users_out(status, action):
    """Whether maintenance mode is on in ``status`` reached by ``action``: Servicing, In
    Maintenance, or Failed while turning maintenance mode on or off."""
    return status in MAINTENANCE_STATUSES or (
        status == Status.FAILED and action in MAINTENANCE_ACTIONS
    )


class Outcome(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    ROLLED_BACK = "rolled_back", "Rolled back"
    ABORTED = "aborted", "Aborted"


OUTCOME_BADGE = {
    Outcome.QUEUED: "blue",
    Outcome.RUNNING: "blue",
    Outcome.SUCCEEDED: "green",
    Outcome.FAILED: "red",
    Outcome.ROLLED_BACK: "amber",
    Outcome.ABORTED: "grey",
}

ACTIVE_OUTCOMES = (Outcome.QUEUED, Outcome.RUNNING)


class AccessLevel(models.TextChoices):
    READ = "read", "Read"
    READ_WRITE = "read_write", "Read-write"


class AccessEnd(models.TextChoices):
    EXPIRED = "expired", "Expired"
    REMOVED = "removed", "Removed"
    REVOKED = "revoked", "Revoked"
    FAILED = "failed", "Could not be applied"
    ROLE_REMOVED = "role_removed", "Role removed"
    DEACTIVATED = "deactivated", "User deactivated"
    GROUPS_UNCONFIRMED = "groups_unconfirmed", "Groups not confirmed"
