"""The two baselines, served only when PORTAL_BENCH_VIEWS is on (never in production).

A touches nothing: the framework's limit on this machine. B goes through the portal's
own session and authentication stack and nothing else: the floor of every signed-in page.
"""

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.views.decorators.http import require_GET


@require_GET
def bare(request):
    return HttpResponse("ok")


@login_required
@require_GET
def signed_in(request):
    return HttpResponse(request.user.get_username())
