"""Data roots: parsing, URIs and the local store (object stores: tests/integration/test_store.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gogoku.cache.remote import SyncReport
from gogoku.errors import InputError
from gogoku.storage import DataRoot, Store, file_md5, parse_data_root


def test_local_roots_are_absolute_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_data_root("./data") == DataRoot(tmp_path / "data")
    assert parse_data_root("") == DataRoot(tmp_path / "data")  # the default
    assert parse_data_root(tmp_path) == DataRoot(tmp_path)
    assert parse_data_root(f"file://{tmp_path}/x") == DataRoot(tmp_path / "x")
    root = parse_data_root(tmp_path)
    assert not root.remote and root.url == str(tmp_path)
    assert root.uri("datasets/a.parquet") == str(tmp_path / "datasets" / "a.parquet")
    assert root.relative(tmp_path / "models" / "m") == "models/m"
    assert root.relative("/elsewhere/m") is None and root.relative("gs://b/models/m") is None


@pytest.mark.parametrize("value", ["gs://my-bucket/team/prod", "gs://my-bucket/team/prod/", Path("gs://my-bucket/team/prod")])
def test_gs_roots_including_the_form_path_collapses_them_to(value: object, tmp_path: Path) -> None:
    # Path("gs://b/p") is "gs:/b/p": both spellings mean the same root.
    root = parse_data_root(value, local_cache=tmp_path)  # type: ignore[arg-type]
    assert (root.scheme, root.bucket, root.prefix, root.url) == ("gs", "my-bucket", "team/prod", "gs://my-bucket/team/prod")
    assert root.local == tmp_path / "gs" / "my-bucket" / "team" / "prod" and root.remote
    assert root.uri("datasets/a.parquet") == "gs://my-bucket/team/prod/datasets/a.parquet"
    assert root.key("raw/x") == "my-bucket/team/prod/raw/x"
    # URIs, Path-collapsed URIs and working-copy paths all name artifacts of the root.
    for location in ("gs://my-bucket/team/prod/models/m", "gs:/my-bucket/team/prod/models/m", root.local / "models" / "m"):
        assert root.relative(location) == "models/m"
    assert root.relative("gs://my-bucket/team/other/m") is None
    assert root.relative("gs://other-bucket/team/prod/m") is None


def test_s3_roots_parse_and_the_local_cache_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GOGOKU_LOCAL_CACHE", str(tmp_path / "lc"))
    assert parse_data_root("gs://bkt") == DataRoot(tmp_path / "lc" / "gs" / "bkt", "gs", "bkt", "")
    assert parse_data_root("s3://bkt/p").url == "s3://bkt/p"
    monkeypatch.delenv("GOGOKU_LOCAL_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert parse_data_root("gs://bkt/x").local == tmp_path / "home" / ".cache" / "gogoku" / "gs" / "bkt" / "x"


@pytest.mark.parametrize(
    ("value", "message"),
    [("gs://", "not a valid bucket name"), ("gs://B@d/x", "not a valid bucket name"),
     ("gs://bkt/a/../b", "'..'"), ("gs://bkt/a//b", "empty"),
     ("ftp://host/x", "unknown scheme ftp://"), ("hdfs://nn/x", "unknown scheme hdfs://"),
     ("azure://c/x", "unknown scheme azure://")],
)
def test_bad_roots_raise_input_error_naming_the_variable(value: str, message: str) -> None:
    with pytest.raises(InputError, match="GOGOKU_DATA_ROOT"):
        parse_data_root(value, local_cache="/tmp/x")
    with pytest.raises(InputError, match=message):
        parse_data_root(value, local_cache="/tmp/x")


def test_a_file_is_not_a_data_root(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match="is a file, not a folder"):
        parse_data_root(tmp_path / "f")


def test_s3_without_its_package_says_what_to_install(tmp_path: Path) -> None:
    # The project does not install s3fs: an s3:// root fails on first use, naming the package.
    with pytest.raises(InputError, match="s3:// data roots need the s3fs package"):
        Store.from_url("s3://bkt/p", local_cache=tmp_path).exists("x")


def test_md5_matches_gcs_base64_form(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"hello" * 100)
    # md5 of b"hello" * 100, base64, as the bucket reports md5Hash.
    assert file_md5(path) == "ToQD6UY+WepZOaM9EkWmbA=="


def test_local_store_fetch_publish_and_pointers(tmp_path: Path) -> None:
    store = Store.from_url(tmp_path / "root")
    with pytest.raises(InputError, match="datasets/x.parquet: no such file"):
        store.fetch("datasets/x.parquet")
    assert store.write_json("models/latest.json", {"model_dir": "m"}) == str(tmp_path / "root" / "models" / "latest.json")
    assert store.read_json("models/latest.json") == {"model_dir": "m"}
    assert store.exists("models/latest.json") and not store.exists("models/other.json")
    (tmp_path / "root" / "models" / "m").mkdir()
    (tmp_path / "root" / "models" / "m" / "metrics.json").write_text("{}")
    # Local roots: publishing is a no-op that returns the URIs.
    assert store.publish("models/m/metrics.json") == [str(tmp_path / "root" / "models" / "m" / "metrics.json")]
    assert store.publish_tree("models/m") == []
    assert store.localize(tmp_path / "root" / "models" / "m" / "metrics.json").read_text() == "{}"
    with pytest.raises(InputError, match="no such file"):
        store.localize(tmp_path / "nowhere.parquet")


def test_sync_reports_add_up() -> None:
    a = SyncReport(downloaded=["x"], bytes_down=10)
    b = SyncReport(uploaded=["y"], deleted=["z"], bytes_up=5, rejected=["w"])
    assert a.add(b).as_dict() == {
        "downloaded": 1, "uploaded": 1, "deleted": 1, "skipped": 0, "rejected": ["w"], "bytes_down": 10, "bytes_up": 5,
    }
