"""Options of the test suite.

``--runslow``    run the tests marked ``slow`` (skipped otherwise); ``swatkit regress --full``
                 gives it.
``--seed S``     seed of the cocotb regression's inputs, valid gaps and ready stalls (default: a
                 fresh one per session, printed in the header and by every test).
``--waves``      record a VCD per cocotb run (in its work folder); ``--waves-format fst`` for FST.
``--build-dir``  where Verilator builds are cached (default ``~/.cache/swatkit/verilator``).
"""

from __future__ import annotations

import secrets

import pytest

SEED = pytest.StashKey[int]()


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="run tests marked slow (the full regression matrix)")
    group = parser.getgroup("swatkit", "swatkit cocotb regression")
    group.addoption("--seed", type=int, default=None, metavar="S",
                    help="seed of the regression's inputs, gaps and stalls (default: random, "
                         "printed)")
    group.addoption("--waves", action="store_true", default=False,
                    help="record waveforms of every cocotb run (dump.vcd)")
    group.addoption("--waves-format", choices=("vcd", "fst"), default="vcd",
                    help="with --waves: vcd (default) or fst (needs the lz4 headers)")
    group.addoption("--build-dir", default=None, metavar="DIR",
                    help="Verilator build cache (default ~/.cache/swatkit/verilator)")


def pytest_configure(config):
    seed = config.getoption("seed")
    if seed is None:  # xdist workers take the controller's seed
        seed = getattr(config, "workerinput", {}).get("swatkit_seed")
    if seed is None:
        seed = secrets.randbelow(2 ** 31)
    if seed < 0:
        raise pytest.UsageError(f"--seed must be a non-negative integer, not {seed}")
    config.stash[SEED] = seed


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    node.workerinput["swatkit_seed"] = node.config.stash[SEED]


def pytest_report_header(config):
    return f"swatkit regression seed: {config.stash[SEED]} (reproduce with --seed)"


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: needs --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def regress_seed(request) -> int:
    """The session's regression seed (``--seed``)."""
    return request.config.stash[SEED]
