"""Django admin: roles are assigned here (environments.py), and webhooks, deliveries,
windows and mails are looked after here (notifications.py), the roles the identity
provider's groups give (sso.py), and service accounts are made (service_accounts.py)."""

from environments.admin import environments, notifications, service_accounts, sso
