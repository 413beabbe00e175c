"""The environment list, whose table asks for news every few seconds.

The table is kept in the cache, and its poll answered 304, under the version of what
the user may see (permissions.visible_version): one aggregate query instead of the page's
rows and their count.
"""

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render
from django.utils.cache import add_never_cache_headers
from django.utils.functional import cached_property
from django.utils.http import quote_etag
from django.views.decorators.cache import cache_control
from django.views.decorators.http import condition, require_GET
from django.views.decorators.vary import vary_on_headers

from environments.cache_keys import viewer_key
from environments.permissions import visible_environments, visible_version

ENVIRONMENTS_PER_PAGE = 50


class Listing:
    """The page of environments asked for, read only if the template shows it (not
    when the table comes from the cache)."""

    def __init__(self, request):
        self.user = request.user
        self.number = request.GET.get("page")

    @cached_property
    def page(self):
        # The id last: environments of one project may share a name, and a page must
        # not show one of them twice or never.
        environments = visible_environments(self.user).select_related("project")
        environments = environments.order_by("project__name", "name", "pk")
        return Paginator(environments, ENVIRONMENTS_PER_PAGE).get_page(self.number)

    @cached_property
    def busy(self):
        return any(environment.is_busy for environment in self.page)


def _list_key(request):
    if getattr(request, "list_key", None) is None:
        page = request.GET.get("page", "1")
        request.list_key = viewer_key(request, "list", page, visible_version(request.user))
    return request.list_key


def _list_etag(request):
    # The page and its table's poll share a URL, and are different answers.
    return quote_etag(f"{_list_key(request)}-poll" if request.htmx else _list_key(request))


@login_required
@require_GET
@vary_on_headers("HX-Request")
@cache_control(private=True, no_cache=True)  # the table's poll: asked again each time
@condition(etag_func=_list_etag)
def environment_list(request):
    context = {"listing": Listing(request), "list_key": _list_key(request)}
    if request.htmx:
        return render(request, "environments/list.html#table", context)
    response = render(request, "environments/list.html", context)
    add_never_cache_headers(response)  # the page: never kept by the browser
    return response
