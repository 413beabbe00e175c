"""The portal's data, one file per concern; every model is importable from here.

Models know no rules and no writer: they never import environments.permissions or
environments.operations (tests/test_layers.py)."""

from environments.models.choices import *  # noqa: F403
from environments.models.delivery import (
    DeliveryState,
    Notification,
    NotificationEvent,
    NotificationKind,
    NotificationOptOut,
    Outbox,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
)
from environments.models.environments import (
    Environment,
    EnvironmentQuerySet,
    Service,
    ShownOnEnvironmentPages,
)
from environments.models.grants import AccessGrant, DatabaseAccount, FirewallRule
from environments.models.history import Operation, OperationLogLine, OperationQuerySet
from environments.models.idempotency import IdempotencyKey
from environments.models.projects import EnvironmentRole, Project, ProjectMembership
from environments.models.sso import ExternalIdentity, GroupRole, SignInSession
from environments.models.tokens import ApiToken, ApiTokenQuerySet, TokenScope
from environments.models.users import (
    ServiceAccount,
    UserSettings,
    is_service_account,
    new_calendar_token,
    user_label,
)
from environments.models.windows import (
    OPEN_WINDOW_STATES,
    WINDOW_BADGE,
    MaintenanceWindow,
    MaintenanceWindowQuerySet,
    WindowState,
    check_period,
)
