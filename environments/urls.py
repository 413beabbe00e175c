from django.urls import path
from django.views.generic import RedirectView

from environments.views import access_grants, environments, gate, history

# The status poll and forward auth first: they are asked for most often (see
# lcs_portal/urls.py), and no pattern before them could match their paths.
urlpatterns = [
    path(
        "environments/<slug:slug>/status/",
        environments.environment_status,
        name="environment-status",
    ),
    path("environments/<slug:slug>/auth/", gate.environment_auth, name="environment-auth"),
    path("", RedirectView.as_view(pattern_name="environment-list"), name="home"),
    path("environments/", environments.environment_list, name="environment-list"),
    path("environments/<slug:slug>/", environments.environment_detail, name="environment-detail"),
    path(
        "environments/<slug:slug>/maintain/<str:action>/",
        environments.maintain,
        name="environment-maintain",
    ),
    path("environments/<slug:slug>/sign-in/", gate.environment_sign_in, name="environment-sign-in"),
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
    path(
        "environments/<slug:slug>/access/rules/<int:pk>/remove/",
        access_grants.remove_rule,
        name="firewall-rule-remove",
    ),
    path(
        "environments/<slug:slug>/access/accounts/<int:pk>/revoke/",
        access_grants.revoke_account,
        name="database-account-revoke",
    ),
    path("history/", history.all_history, name="history"),
    path("history.csv", history.all_history_csv, name="history-csv"),
]
