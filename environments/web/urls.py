from django.urls import path
from django.views.generic import RedirectView

from environments.web import (
    access_grants,
    details,
    environment_list,
    gate,
    history,
    maintain,
    preferences,
    windows,
)

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="environment-list"), name="home"),
    path("environments/", environment_list.environment_list, name="environment-list"),
    path("environments/<slug:slug>/", details.environment_detail, name="environment-detail"),
    path(
        "environments/<slug:slug>/status/",
        details.environment_status,
        name="environment-status",
    ),
    path(
        "environments/<slug:slug>/maintain/<str:action>/",
        maintain.maintain,
        name="environment-maintain",
    ),
    path("environments/<slug:slug>/stop/", maintain.stop, name="environment-stop"),
    path("environments/<slug:slug>/auth/", gate.environment_auth, name="environment-auth"),
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
        "environments/<slug:slug>/access/accounts/<int:pk>/credentials/",
        access_grants.account_credentials,
        name="database-account-credentials",
    ),
    path(
        "environments/<slug:slug>/access/accounts/<int:pk>/revoke/",
        access_grants.revoke_account,
        name="database-account-revoke",
    ),
    # Scheduled maintenance windows and the user's settings.
    path("environments/<slug:slug>/windows/", windows.window_list, name="window-list"),
    path(
        "environments/<slug:slug>/windows/schedule/",
        windows.schedule_window,
        name="window-schedule",
    ),
    path(
        "environments/<slug:slug>/windows/<int:pk>/cancel/",
        windows.cancel_window,
        name="window-cancel",
    ),
    path(
        "environments/<slug:slug>/windows/<int:pk>/end/",
        windows.end_window,
        name="window-end",
    ),
    path("calendar/<str:token>/<slug:slug>.ics", windows.calendar_feed, name="calendar-feed"),
    path("settings/", preferences.user_settings, name="user-settings"),
    path("history/", history.all_history, name="history"),
    path("history.csv", history.all_history_csv, name="history-csv"),
]
