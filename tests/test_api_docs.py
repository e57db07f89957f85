"""The API documentation pages render from vendored assets only."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/"])
def test_it_serves_docs_without_outside_resources(alice_client, path):
    response = alice_client.get(path)
    assert response.status_code == 200
    html = response.content.decode()
    outside = re.findall(r"""(?:src|href)=["'](https?://[^"']+)""", html)
    assert outside == []


def test_it_serves_the_schema_with_every_v1_path(alice_client):
    response = alice_client.get("/api/schema/?format=json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in ("/api/v1/ingest", "/api/v1/ingest/{job_id}", "/api/v1/library"):
        assert path in paths
