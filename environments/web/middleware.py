"""htmx and signing in: a poll whose session has ended must not swap the sign-in page
into the middle of the details page."""

from csp.middleware import CSPMiddleware
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import resolve_url
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.http import HttpResponseClientRedirect


class HtmxLoginRedirectMiddleware:
    """Turn the redirect to the sign-in page that an htmx request gets (its session
    expired, or the user signed out in another tab) into a full-page redirect, back to
    the page the request came from: signing in must not land on a poll's fragment."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            getattr(request, "htmx", False)
            and response.status_code == 302
            and response.url.startswith(resolve_url(settings.LOGIN_URL))
        ):
            return HttpResponseClientRedirect(sign_in_url(request))
        return response


def sign_in_url(request):
    """The sign-in page, then the page the person was on (htmx's HX-Current-URL, if it
    is of this site), else wherever signing in goes by default."""
    page = request.htmx.current_url_abs_path
    if page and url_has_allowed_host_and_scheme(
        page, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect_to_login(page).url
    return resolve_url(settings.LOGIN_URL)


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    """django-csp's middleware, but a response without a body gets no policy: there is
    no document for it to govern. Those are the responses asked for most often: the
    reverse proxy's forward-auth answer (204) before every request to an environment,
    and a poll's revalidation (304), where the browser keeps the headers of the
    response it already has, policy included (RFC 9111, 4.3.4)."""

    BODILESS = (204, 304)

    def process_response(self, request, response):
        if response.status_code in self.BODILESS:
            return response
        return super().process_response(request, response)
