from django.apps import AppConfig
from django.core.checks import register


class EnvironmentsConfig(AppConfig):
    name = "environments"
    verbose_name = "Environments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Connects the receiver that keeps a user's time zone in their session when
        # they sign in (environments/time_zones.py).
        from environments import time_zones  # noqa: F401
        from environments.checks import check_database_driver_roles

        # In `check --deploy` and at run_portal start only: it connects to servers.
        register(check_database_driver_roles, "drivers", deploy=True)
