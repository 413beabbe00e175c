from django.apps import AppConfig
from django.core.checks import register


class EnvironmentsConfig(AppConfig):
    name = "environments"
    verbose_name = "Environments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Connect the receivers: what follows a change of a user or a membership
        # (operations.receivers), the listeners of the history's events (notify, windows),
        # and the user's time zone kept in their session at sign-in (time_zones).
        from environments import time_zones  # noqa: F401
        from environments.checks import check_database_driver_roles
        from environments.notify import notifications  # noqa: F401
        from environments.operations import receivers  # noqa: F401
        from environments.windows import lifecycle  # noqa: F401

        # In `check --deploy` and at run_portal start only: it connects to servers.
        register(check_database_driver_roles, "drivers", deploy=True)
