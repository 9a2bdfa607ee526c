"""The default tier's share of the tests marked ``by_turns`` (``tests/conftest.py``,
``off_turn``): each shape once, stall-free and stalled by turns; every pair with --runslow."""

import collections

import pytest

TURNS = "by turns: "


def _left_out(item) -> bool:
    return any(m.kwargs.get("reason", "").startswith(TURNS) for m in item.iter_markers("skip"))


def test_by_turns_runs_each_shape_once_with_both_settings(request):
    items = [i for i in request.session.items if i.get_closest_marker("by_turns")]
    if not items:
        pytest.skip("no test marked by_turns in this session's selection")
    runslow = request.config.getoption("--runslow")
    tests = collections.defaultdict(lambda: collections.defaultdict(list))
    for item in items:
        (name,) = item.get_closest_marker("by_turns").args
        assert set(item.callspec.params) > {name}, item.nodeid   # (shapes and the setting)
        shape = tuple(id(v) for a, v in sorted(item.callspec.params.items()) if a != name)
        tests[(item.path, item.originalname)][shape].append(
            (item.callspec.params[name], _left_out(item), "slow" in item.keywords))
    for test, shapes in tests.items():
        kept_settings = set()
        for shape, runs in shapes.items():
            assert len(runs) == 2 and runs[0][0] != runs[1][0], (test, shape)   # two settings
            kept = [setting for setting, left_out, _ in runs if not left_out]
            if runslow:
                assert len(kept) == 2, (test, shape)
            elif not runs[0][2]:   # (a slow shape runs in neither setting)
                assert len(kept) == 1, (test, shape)
            kept_settings.update(kept)
        if len(shapes) > 1:   # some shapes stall-free, some stalled
            assert len(kept_settings) == 2, test
