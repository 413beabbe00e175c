"""The portal's URLs plus the two baselines (settings use this when PORTAL_BENCH_VIEWS=1)."""

from django.urls import include, path

from bench import views

urlpatterns = [
    path("bench/bare/", views.bare, name="bench-bare"),
    path("bench/signed-in/", views.signed_in, name="bench-signed-in"),
    path("", include("lcs_portal.urls")),
]
