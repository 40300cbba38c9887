"""Data root parsing for gs:// roots (no network: the sync itself is in tests/integration)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gogoku.cache.gcs import DataRoot, SyncReport, file_md5, parse_data_root
from gogoku.errors import InputError


def test_local_roots_stay_local(tmp_path: Path) -> None:
    assert parse_data_root("./data") == DataRoot(Path("data"))
    assert parse_data_root(tmp_path) == DataRoot(tmp_path)
    assert not parse_data_root(tmp_path).remote


@pytest.mark.parametrize("value", ["gs://my-bucket/team/prod", "gs://my-bucket/team/prod/", Path("gs://my-bucket/team/prod")])
def test_gs_roots_including_the_form_path_collapses_them_to(value: object, tmp_path: Path) -> None:
    # Path("gs://b/p") is "gs:/b/p": both spellings mean the same root.
    root = parse_data_root(value, local_cache=tmp_path)  # type: ignore[arg-type]
    assert (root.bucket, root.prefix, root.url) == ("my-bucket", "team/prod", "gs://my-bucket/team/prod")
    assert root.local == tmp_path / "my-bucket" / "team" / "prod" and root.remote


def test_bucket_without_prefix_and_the_local_cache_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GOGOKU_LOCAL_CACHE", str(tmp_path / "lc"))
    assert parse_data_root("gs://bkt") == DataRoot(tmp_path / "lc" / "bkt", "bkt", "")
    monkeypatch.delenv("GOGOKU_LOCAL_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert parse_data_root("gs://bkt/x").local == tmp_path / "home" / ".cache" / "gogoku" / "bkt" / "x"


@pytest.mark.parametrize(
    ("value", "message"),
    [("gs://", "expected gs://bucket/prefix"), ("gs://B@d/x", "not a valid bucket name"),
     ("gs://bkt/a/../b", "'..'"), ("gs://bkt/a//b", "empty")],
)
def test_bad_gs_roots_raise_input_error(value: str, message: str) -> None:
    with pytest.raises(InputError, match="GOGOKU_DATA_ROOT"):
        parse_data_root(value, local_cache="/tmp/x")
    with pytest.raises(InputError, match=message):
        parse_data_root(value, local_cache="/tmp/x")


def test_md5_matches_gcs_base64_form(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"hello" * 100)
    # md5 of b"hello" * 100, base64, as the bucket reports md5Hash.
    assert file_md5(path) == "ToQD6UY+WepZOaM9EkWmbA=="


def test_sync_reports_add_up() -> None:
    a = SyncReport(downloaded=["x"], bytes_down=10)
    b = SyncReport(uploaded=["y"], deleted=["z"], bytes_up=5, rejected=["w"])
    assert a.add(b).as_dict() == {
        "downloaded": 1, "uploaded": 1, "deleted": 1, "skipped": 0, "rejected": ["w"], "bytes_down": 10, "bytes_up": 5,
    }
