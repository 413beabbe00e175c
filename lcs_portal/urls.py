from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import include, path

from environments.api import api
from environments.sso import views as sso
from environments.web import tokens
from environments.web.health import healthz

urlpatterns = [
    path("", include("environments.web.urls")),
    path(settings.ADMIN_PATH, admin.site.urls),
    # Signing in and out and changing one's password; no password reset until there is
    # a mail set-up to send it (and a throttle in front of it).
    path("accounts/login/", sso.SignInView.as_view(), name="login"),
    path("accounts/logout/", sso.SignOutView.as_view(), name="logout"),
    # Single sign-on with OpenID Connect, when PORTAL_OIDC_ISSUER is set (docs/sso.md).
    path("accounts/oidc/sign-in/", sso.sso_sign_in, name="sso-sign-in"),
    path("accounts/oidc/callback/", sso.sso_callback, name="sso-callback"),
    path(
        "accounts/password_change/",
        auth_views.PasswordChangeView.as_view(),
        name="password_change",
    ),
    path(
        "accounts/password_change/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("healthz", healthz, name="healthz"),
    # The JSON API (environments/api/) and the tokens it takes (environments/tokens.py).
    path("api/v1/", api.urls),
    path("tokens/", tokens.token_list, name="api-tokens"),
    path("tokens/<int:pk>/revoke/", tokens.revoke_token, name="api-token-revoke"),
    # Browsers ask for it whatever the page says.
    path("favicon.ico", lambda request: redirect(static("favicon.svg"), permanent=True)),
]
