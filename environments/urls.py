from django.urls import path
from django.views.generic import RedirectView

from environments.views import environments, gate, history

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="environment-list"), name="home"),
    path("environments/", environments.environment_list, name="environment-list"),
    path("environments/<slug:slug>/", environments.environment_detail, name="environment-detail"),
    path(
        "environments/<slug:slug>/status/",
        environments.environment_status,
        name="environment-status",
    ),
    path(
        "environments/<slug:slug>/maintain/<str:action>/",
        environments.maintain,
        name="environment-maintain",
    ),
    path("environments/<slug:slug>/sign-in/", gate.environment_sign_in, name="environment-sign-in"),
    path("environments/<slug:slug>/auth/", gate.environment_auth, name="environment-auth"),
    path(
        "environments/<slug:slug>/history/", history.environment_history, name="environment-history"
    ),
    path(
        "environments/<slug:slug>/history.csv",
        history.environment_history_csv,
        name="environment-history-csv",
    ),
    path(
        "environments/<slug:slug>/history/<uuid:activity_id>/",
        history.operation_detail,
        name="operation-detail",
    ),
    path("history/", history.all_history, name="history"),
    path("history.csv", history.all_history_csv, name="history-csv"),
]
