"""The library on S3: moto's S3 server on 127.0.0.1 stands in for MinIO or AWS.

The same code paths as on local disk (django-storages' S3Storage behind
`default_storage`): write, move tier, delete, rebuild from files, export.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.test import override_settings

from library import files, services
from library.models import LibraryItem
from tests.library.factories import make_item

pytestmark = pytest.mark.django_db
ACCESS = {"aws_access_key_id": "librarian", "aws_secret_access_key": "librarian-secret"}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    # Its request log (werkzeug) would fill the test output with one line per call.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_endpoint: str, _isolated_data: None) -> Iterator[Any]:
    """A fresh bucket, made the default storage the way LIBRARIAN_STORAGE=s3 does."""
    name = f"librarian-{uuid.uuid4().hex[:12]}"
    s3 = boto3.resource("s3", endpoint_url=s3_endpoint, region_name="us-east-1", **ACCESS)
    s3.create_bucket(Bucket=name)
    storages = {
        **django_settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": name,
                "endpoint_url": s3_endpoint,
                "region_name": "us-east-1",
                "access_key": ACCESS["aws_access_key_id"],
                "secret_key": ACCESS["aws_secret_access_key"],
                "file_overwrite": True,
                "default_acl": None,
                "querystring_auth": False,
            },
        },
    }
    with override_settings(STORAGES=storages):
        yield s3.Bucket(name)


def keys(bucket: Any) -> list[str]:
    return sorted(obj.key for obj in bucket.objects.all())


def test_it_writes_items_under_the_tier_folders(bucket):
    item = make_item("Bees and orchards", tier="tier-b", tags=["bees"])
    assert keys(bucket) == ["library/tier-b/bees-and-orchards.md"]
    body = bucket.Object(item.file_path).get()["Body"].read().decode()
    meta, text = files.parse(body)
    assert meta["url"] == item.url and meta["tags"] == ["bees"]
    assert text.startswith("Bees and orchards.")


def test_it_overwrites_a_file_in_place(bucket):
    item = make_item("Bees and orchards", tags=["bees"])
    services.item_set_tags(item, ["bees", "pollination"])
    assert keys(bucket) == [item.file_path]
    assert files.parse(files.read(item.file_path))[0]["tags"] == ["bees", "pollination"]


def test_it_moves_a_file_when_the_tier_changes(bucket):
    item = make_item("Bees and orchards", tier="tier-b")
    services.item_set_tier(item, "tier-a")
    assert keys(bucket) == ["library/tier-a/bees-and-orchards.md"]
    assert files.parse(files.read(item.file_path))[0]["tier"] == "tier-a"


def test_it_deletes_the_file_with_the_item(bucket):
    keep = make_item("Kept article")
    services.item_delete(make_item("Gone article"))
    assert keys(bucket) == [keep.file_path]
    assert not files.exists("library/tier-b/gone-article.md")


def test_it_lists_the_tree_through_its_prefixes(bucket):
    a = make_item("Alpha article", tier="tier-a")
    d = make_item("Delta article", tier="tier-d")
    bucket.put_object(Key="elsewhere/not-ours.md", Body=b"x")
    assert sorted(files.listdir_recursive()) == sorted([a.file_path, d.file_path])


def test_it_rebuilds_the_database_from_the_bucket(bucket):
    item = make_item("Alpha article", tier="tier-c", score=4.0, tags=["bees", "orchards"])
    LibraryItem.objects.all().delete()
    out = io.StringIO()
    call_command("rebuild_from_files", "--no-progress", stdout=out)
    assert out.getvalue().startswith("created=1 updated=0 unchanged=0")
    restored = LibraryItem.objects.get(url=item.url)
    assert (restored.tier, restored.quality_score, restored.file_path) == (
        "tier-c",
        4.0,
        item.file_path,
    )
    assert restored.tag_names() == ["bees", "orchards"]


def test_it_exports_the_bucket_as_zip_and_json_lines(bucket, tmp_path):
    a = make_item("Alpha article", tier="tier-a")
    b = make_item("Beta article", tier="tier-b")
    call_command("export_library", "--out", str(tmp_path / "x.zip"), "--no-progress")
    with zipfile.ZipFile(tmp_path / "x.zip") as archive:
        assert sorted(archive.namelist()) == sorted([a.file_path, b.file_path])
        assert archive.read(a.file_path).decode() == files.read(a.file_path)
    out = io.StringIO()
    call_command("export_library", "--format", "jsonl", "--out", "-", stdout=out)
    paths = [json.loads(line)["path"] for line in out.getvalue().splitlines()]
    assert paths == sorted([a.file_path, b.file_path])
