"""Django admin: roles are assigned here (environments.py), and webhooks, deliveries,
windows and mails are looked after here (notifications.py), and the roles the identity
provider's groups give (sso.py)."""

from environments.admin import environments, notifications, sso
