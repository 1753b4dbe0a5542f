"""restic helpers (module_utils/restic.py): repository plan, GFS flags, check rotation."""
import pytest

from archive_dr.fixity import load

rs = load("restic")


def test_repo_state_and_plan(tmp_path):
    assert rs.local_repo_state(str(tmp_path / "nope")) == "absent"
    assert rs.repo_plan("absent") == ["init"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert rs.local_repo_state(str(empty)) == "absent"
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    (repo / "config").write_bytes(b"x")
    assert rs.local_repo_state(str(repo)) == "repo" and rs.repo_plan("repo") == []
    other = tmp_path / "other"
    other.mkdir()
    (other / "important.pdf").write_bytes(b"%PDF")
    assert rs.local_repo_state(str(other)) == "foreign"
    with pytest.raises(ValueError, match="refusing"):
        rs.repo_plan("foreign")


def test_forget_args():
    assert rs.forget_args({"yearly": 10, "daily": 7, "last": 3}) == ["--keep-last=3", "--keep-daily=7", "--keep-yearly=10"]
    with pytest.raises(ValueError, match="daily must be >= 1"):
        rs.forget_args({"daily": 0})
    with pytest.raises(ValueError):
        rs.forget_args({})


def test_next_subset_rotates_over_all_parts():
    seen, k = [], None
    for _ in range(8):
        k = rs.next_subset(k, 4)
        seen.append(k)
    assert seen == [1, 2, 3, 4, 1, 2, 3, 4]
    assert rs.next_subset("garbage", 3) == 1
    with pytest.raises(ValueError):
        rs.next_subset(1, 0)
