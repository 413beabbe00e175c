from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from environments.views.health import healthz

# The portal's own pages first: Django tries the patterns in order, and the status
# poll and forward auth are asked for far more often than anything else.
urlpatterns = [
    path("", include("environments.urls")),
    path(settings.ADMIN_PATH, admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("healthz", healthz, name="healthz"),
]
