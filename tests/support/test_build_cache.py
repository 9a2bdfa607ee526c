"""The shared build cache: one build per key, and what interrupted builds leave is removed."""

import multiprocessing
import os
import signal

from swatkit.support.build_cache import cached_build, locked, remove_leftovers


def _make(path):
    path.mkdir()
    (path / "top").write_text("built\n")
    return {"build": "test"}


def _killed_build(root, key):
    """A build of ``key`` that is killed with SIGKILL half-way (nothing runs its cleanup)."""
    def make(path):
        path.mkdir()
        (path / "half").write_text("")
        os.kill(os.getpid(), signal.SIGKILL)
    cached_build(root, key, "top", make)


def test_a_killed_build_leaves_a_folder_the_next_build_of_any_key_removes(tmp_path):
    proc = multiprocessing.get_context("fork").Process(target=_killed_build,
                                                       args=(tmp_path, "aaaa"))
    proc.start()
    proc.join(60)
    assert proc.exitcode == -signal.SIGKILL
    left = [p.name for p in tmp_path.glob("aaaa.tmp-*")]
    assert len(left) == 1 and (tmp_path / left[0] / "half").exists()
    # a leftover of a key whose build runs now (its lock held) is not touched
    (tmp_path / "bbbb.tmp-00000000").mkdir()
    with locked(tmp_path / "bbbb.lock"):
        info = cached_build(tmp_path, "cccc", "top", _make)
        assert info.built and (tmp_path / "cccc" / "top").is_file()
        assert not list(tmp_path.glob("aaaa.tmp-*"))
        assert (tmp_path / "bbbb.tmp-00000000").is_dir()
    assert remove_leftovers(tmp_path) == ["bbbb.tmp-00000000"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["cccc"]
    # a cached key is not rebuilt
    assert not cached_build(tmp_path, "cccc", "top", _make).built
