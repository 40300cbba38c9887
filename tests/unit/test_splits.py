from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from gogoku.calendar import business_days
from gogoku.dataset.splits import validation_split, walk_forward_splits
from gogoku.errors import InputError

# Five years of JPX sessions (2019-2023): 1,218 dates.
DATES = business_days(date(2019, 1, 1), date(2023, 12, 31))


def test_reference_defaults_on_five_years() -> None:
    folds = walk_forward_splits(DATES)
    n = len(DATES)
    test_len = (n - 252 - 20) // 5
    assert [f.index for f in folds] == [0, 1, 2, 3, 4]
    assert all(len(f.test_dates) == test_len >= 63 for f in folds)
    # The test blocks are the last 5 * test_len dates, in order, disjoint and back to back.
    tested = [d for f in folds for d in f.test_dates]
    assert tested == DATES[n - 5 * test_len :]
    # Expanding: every fold trains from the first date.
    assert all(f.train_dates[0] == DATES[0] for f in folds)
    assert len(folds[0].train_dates) >= 252
    assert [len(f.train_dates) for f in folds] == [n - 5 * test_len - 20 + k * test_len for k in range(5)]


@pytest.mark.parametrize("embargo", [0, 1, 5, 20, 60])
def test_embargo_is_exactly_the_dates_between_train_and_test(embargo: int) -> None:
    folds = walk_forward_splits(DATES, embargo=embargo)
    position = {d: i for i, d in enumerate(DATES)}
    for f in folds:
        last_train = position[f.train_dates[-1]]
        first_test = position[f.test_dates[0]]
        assert first_test - last_train - 1 == embargo
        assert len(f.embargo_dates) == embargo
        assert list(f.embargo_dates) == DATES[last_train + 1 : first_test]
        assert not set(f.train_dates) & set(f.test_dates)
        assert not set(f.embargo_dates) & (set(f.train_dates) | set(f.test_dates))
        assert max(f.train_dates) < min(f.test_dates)


def test_blocks_are_ordered_and_disjoint() -> None:
    folds = walk_forward_splits(DATES, n_splits=4, embargo=10, min_train=100, min_test=30)
    for a, b in zip(folds, folds[1:], strict=False):
        assert a.test_dates[-1] < b.test_dates[0]
        assert not set(a.test_dates) & set(b.test_dates)
        # A later fold's training contains the earlier test block only up to its own embargo.
        assert set(a.test_dates) <= set(b.train_dates) | set(b.embargo_dates)


def test_exact_sizes_on_a_small_hand_case() -> None:
    days = DATES[:30]
    folds = walk_forward_splits(days, n_splits=3, embargo=2, min_train=10, min_test=5)
    # available = 30 - 10 - 2 = 18 -> blocks of 6: tests [12, 18), [18, 24), [24, 30).
    assert [(days.index(f.test_dates[0]), len(f.test_dates)) for f in folds] == [(12, 6), (18, 6), (24, 6)]
    assert [len(f.train_dates) for f in folds] == [10, 16, 22]
    assert folds[0].embargo_dates == (days[10], days[11])


def test_min_train_is_respected_and_the_remainder_goes_to_training() -> None:
    days = DATES[:33]
    folds = walk_forward_splits(days, n_splits=3, embargo=2, min_train=10, min_test=5)
    # available = 21 -> blocks of 7 take the last 21 dates; the first fold trains on 33 - 21 - 2 = 10.
    assert len(folds[0].train_dates) == 10 and all(len(f.test_dates) == 7 for f in folds)
    days = DATES[:35]
    folds = walk_forward_splits(days, n_splits=3, embargo=2, min_train=10, min_test=5)
    # available = 23 -> blocks of 7; the two leftover dates lengthen the first training period.
    assert len(folds[0].train_dates) == 12


def test_unsorted_and_repeated_dates_are_normalized() -> None:
    days = DATES[:40]
    shuffled = list(reversed(days)) + days[:10]
    assert walk_forward_splits(shuffled, 2, 3, 10, 5) == walk_forward_splits(days, 2, 3, 10, 5)


def test_too_short_data_raises_naming_the_parameters() -> None:
    days = DATES[:26]
    # 10 + 2 + 3 * 5 = 27 needed.
    with pytest.raises(InputError, match=r"n_splits=3.*min_train=10.*need at least 27"):
        walk_forward_splits(days, n_splits=3, embargo=2, min_train=10, min_test=5)
    assert len(walk_forward_splits(DATES[:27], n_splits=3, embargo=2, min_train=10, min_test=5)) == 3
    with pytest.raises(InputError, match="n_splits=5"):
        walk_forward_splits(DATES[:300])


def test_bad_parameters_raise() -> None:
    with pytest.raises(InputError, match="n_splits"):
        walk_forward_splits(DATES, n_splits=0)
    with pytest.raises(InputError, match="embargo"):
        walk_forward_splits(DATES, embargo=-1)
    with pytest.raises(InputError, match="train_window"):
        walk_forward_splits(DATES, train_window=300)
    with pytest.raises(InputError, match="shorter than min_train"):
        walk_forward_splits(DATES, mode="rolling", train_window=100)
    with pytest.raises(InputError, match="mode"):
        walk_forward_splits(DATES, mode="sliding")  # type: ignore[arg-type]


def test_rolling_window_keeps_the_last_train_window_dates() -> None:
    expanding = walk_forward_splits(DATES, embargo=20)
    rolling = walk_forward_splits(DATES, embargo=20, mode="rolling", train_window=300)
    for e, r in zip(expanding, rolling, strict=True):
        assert r.test_dates == e.test_dates and r.embargo_dates == e.embargo_dates
        assert r.train_dates == e.train_dates[-300:]
    assert [len(r.train_dates) for r in rolling] == [min(300, len(e.train_dates)) for e in expanding]
    default = walk_forward_splits(DATES, mode="rolling")
    assert all(len(f.train_dates) == 252 for f in default[1:])


def test_fold_filters_eager_and_lazy_frames() -> None:
    days = DATES[:40]
    frame = pl.DataFrame({"Date": [d for d in days for _ in range(3)], "Code": ["1", "2", "3"] * len(days)})
    fold = walk_forward_splits(days, n_splits=2, embargo=3, min_train=10, min_test=5)[1]
    train = fold.filter(frame, "train")
    assert train.height == 3 * len(fold.train_dates)
    assert set(train["Date"]) == set(fold.train_dates)
    test = fold.filter(frame.lazy(), "test").collect()
    assert sorted(set(test["Date"])) == list(fold.test_dates)
    assert fold.filter(frame, "embargo").height == 3 * 3
    renamed = frame.rename({"Date": "d"})
    assert fold.filter(renamed, "test", date_col="d").height == test.height
    with pytest.raises(InputError, match="fold part"):
        fold.filter(frame, "valid")  # type: ignore[arg-type]


def test_validation_split_inside_training() -> None:
    train = DATES[:100]
    fit, valid = validation_split(train, fraction=0.15, embargo=5)
    assert valid == tuple(train[-15:])
    assert fit == tuple(train[: 100 - 15 - 5])
    position = {d: i for i, d in enumerate(train)}
    assert position[valid[0]] - position[fit[-1]] - 1 == 5
    fit, valid = validation_split(DATES[:100], fraction=0.29, embargo=0)
    assert len(valid) == 29 and len(fit) == 71
    fit, valid = validation_split(DATES[:10], fraction=0.01, embargo=2)
    assert len(valid) == 1 and len(fit) == 7


def test_validation_split_errors() -> None:
    with pytest.raises(InputError, match="fraction"):
        validation_split(DATES[:100], fraction=1.0)
    with pytest.raises(InputError, match="too few"):
        validation_split(DATES[:20], fraction=0.15, embargo=20)


def test_sort_columnwise_equals_a_sort_and_keeps_a_sorted_frame() -> None:
    from gogoku.dataset.splits import sort_columnwise

    df = pl.DataFrame({"Code": ["b", "a", "b", "a", "c"], "Date": [2, 1, 1, 2, 1], "x": [1.0, 2.0, 3.0, None, 5.0]})
    by_date = sort_columnwise(df, ["Date", "Code"])
    assert by_date.equals(df.sort("Date", "Code"))
    assert by_date["x"].to_list() == [2.0, 3.0, 5.0, None, 1.0]
    assert sort_columnwise(by_date, ["Date", "Code"]) is by_date  # already sorted: the same frame, no copy
    assert sort_columnwise(df, ["Code", "Date"]).equals(df.sort("Code", "Date"))
