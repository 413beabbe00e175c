"""Hostile input to the API, generated: whatever Hypothesis sends, the answer is a JSON
success or a 4xx problem, never a 500 or a page, and a refused request writes nothing."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from environments.models import DatabaseAccount, FirewallRule, Operation
from tests.api_clients import API, api_client

fuzz = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=80),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=5)
fields = st.sampled_from(["action", "service", "reason", "name", "address", "level", "hours"])
bodies = st.dictionaries(st.one_of(fields, st.text(max_size=10)), values, max_size=6)


def written():
    return (
        Operation.objects.count(),
        FirewallRule.objects.count(),
        DatabaseAccount.objects.count(),
    )


def check(response):
    assert response.status_code < 500, response.content[:300]
    if response.status_code >= 400:
        assert response["Content-Type"] == "application/problem+json"
        assert json.loads(response.content)["status"] == response.status_code
    else:
        assert response["Content-Type"].startswith("application/json")
    return response


@pytest.mark.parametrize("endpoint", ["operations", "firewall-rules", "database-accounts"])
def test_any_json_body_gets_an_answer_or_a_problem(environment, manager, endpoint):
    client = api_client(manager)
    path = f"{API}/environments/{environment.slug}/{endpoint}"

    @fuzz
    @given(body=bodies)
    def property_(body):
        before = written()
        response = check(client.post(path, json.dumps(body), content_type="application/json"))
        if response.status_code >= 400:
            assert written() == before

    property_()


def test_any_bytes_as_a_body_get_a_problem(environment, manager):
    client = api_client(manager)
    path = f"{API}/environments/{environment.slug}/operations"

    @fuzz
    @given(body=st.binary(max_size=200))
    def property_(body):
        check(client.post(path, body, content_type="application/json"))

    property_()


def test_any_history_query_gets_a_page_or_a_problem(environment, manager):
    client = api_client(manager)
    keys = st.sampled_from(
        ["type", "kind", "outcome", "user", "environment", "since", "until", "cursor", "limit"]
    )
    queries = st.dictionaries(keys, st.text(max_size=30), max_size=5)

    @fuzz
    @given(query=queries)
    def property_(query):
        check(client.get(f"{API}/history", query))
        check(client.get(f"{API}/environments/{environment.slug}/history", query))

    property_()


def test_any_path_under_the_api_gets_an_answer_or_a_problem(environment, manager):
    client = api_client(manager)
    segment = st.text(
        alphabet=st.characters(blacklist_categories=["Cs", "Cc"], blacklist_characters="/?#%"),
        min_size=1,
        max_size=20,
    )

    @fuzz
    @given(
        parts=st.lists(segment, min_size=1, max_size=3), method=st.sampled_from(["GET", "DELETE"])
    )
    def property_(parts, method):
        path = f"{API}/" + "/".join(parts)
        check(client.generic(method, path))

    property_()
