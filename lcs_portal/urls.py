from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from environments.views.health import healthz

urlpatterns = [
    path("", include("environments.urls")),
    path(settings.ADMIN_PATH, admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("healthz", healthz, name="healthz"),
]
