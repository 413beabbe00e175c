"""An htmx request whose session has ended sends the whole page to sign in, and signing
in brings the person back to the page they were on, never to the fragment it asked for."""

from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def status_url(environment):
    return reverse("environment-status", args=[environment.slug])


def poll(client, environment, current_url):
    headers = {"HTTP_HX_REQUEST": "true"}
    if current_url is not None:
        headers["HTTP_HX_CURRENT_URL"] = current_url
    return client.get(status_url(environment), **headers)


def next_of(response):
    location = urlsplit(response["HX-Redirect"])
    assert location.path == reverse("login")
    return parse_qs(location.query).get("next")


def test_a_signed_out_poll_sends_the_page_to_sign_in_and_back_to_itself(client, environment):
    page = f"http://testserver{environment.get_absolute_url()}?tab=1"

    response = poll(client, environment, page)

    assert response.status_code == 200
    assert "<html" not in response.content.decode()
    assert next_of(response) == [f"{environment.get_absolute_url()}?tab=1"]


@pytest.mark.parametrize(
    "current_url",
    [None, "https://evil.example/environments/", "http://testserver//evil.example/", "nonsense"],
    ids=["no header", "another site", "protocol-relative path", "not a URL"],
)
def test_a_page_of_another_site_or_none_signs_in_to_the_default_page(
    client, environment, current_url
):
    response = poll(client, environment, current_url)

    assert next_of(response) is None


def test_signing_in_after_it_lands_on_the_details_page(client, environment, manager):
    page = f"http://testserver{environment.get_absolute_url()}"
    login = poll(client, environment, page)["HX-Redirect"]

    answer = client.post(login, {"username": manager.username, "password": PASSWORD})

    assert answer.status_code == 302
    assert answer.url == environment.get_absolute_url()
    assert "<html" in client.get(answer.url).content.decode()
