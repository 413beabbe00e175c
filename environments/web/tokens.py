"""The "API tokens" page: a user's own personal access tokens, made and revoked.

A new token's secret is on the answer to the POST that made it, and nowhere else: it is
never stored, never redirected through a session or a message, and never cached."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from environments import tokens


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def token_list(request):
    form = tokens.NewTokenForm(request.POST or None)
    context = {"form": form, "new_secret": None}
    status = 200
    if request.method == "POST":
        if form.is_valid():
            token, secret = tokens.issue(
                request.user,
                name=form.cleaned_data["name"],
                scope=form.cleaned_data["scope"],
                expires_at=form.expires_at,
            )
            context.update(new_token=token, new_secret=secret, form=tokens.NewTokenForm())
        else:
            status = 400
    context["tokens"] = request.user.api_tokens.all()
    return render(request, "tokens/list.html", context, status=status)


@login_required
@require_POST
def revoke_token(request, pk):
    token = get_object_or_404(request.user.api_tokens, pk=pk)
    if tokens.revoke(token):
        messages.success(request, f"Token “{token.name}” ({token.prefix}…) is revoked.")
    return redirect("api-tokens")
