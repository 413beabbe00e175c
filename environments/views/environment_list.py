"""The environment list, whose table asks for news every few seconds."""

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render
from django.utils.cache import patch_cache_control
from django.utils.http import quote_etag
from django.views.decorators.http import condition, require_GET

from environments.access import visible_environments
from environments.cache_keys import rows_key

ENVIRONMENTS_PER_PAGE = 50


def _page(request):
    """The page of environments asked for, read once for both the ETag and the view."""
    if getattr(request, "environments_page", None) is None:
        # The id last: environments of one project may share a name, and a page must
        # not show one of them twice or never.
        environments = visible_environments(request.user).order_by("project__name", "name", "pk")
        paginator = Paginator(environments, ENVIRONMENTS_PER_PAGE)
        request.environments_page = paginator.get_page(request.GET.get("page"))
    return request.environments_page


def _rows_etag(request):
    page = _page(request)
    return quote_etag(f"{page.number}.{page.paginator.count}.{rows_key(page)}")


@login_required
@require_GET
@condition(etag_func=_rows_etag)
def environment_list(request):
    page = _page(request)
    context = {
        "page": page,
        "rows_key": rows_key(page),
        "busy": any(environment.is_busy for environment in page),
    }
    if request.htmx:  # the table's poll
        response = render(request, "environments/list.html#table", context)
    else:
        response = render(request, "environments/list.html", context)
    patch_cache_control(response, private=True, no_cache=True)
    return response
