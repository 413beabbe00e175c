from django.apps import AppConfig


class EnvironmentsConfig(AppConfig):
    name = "environments"
    verbose_name = "Environments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Connects the receiver that keeps a user's time zone in their session when
        # they sign in (environments/time_zones.py).
        from environments import time_zones  # noqa: F401
