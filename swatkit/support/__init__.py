"""What every stage may share, one floor below them all: it imports no stage.

- :mod:`~swatkit.support.version`: the package version;
- :mod:`~swatkit.support.toml_text`: TOML text of plain data (``swatkit.toml``, ``--print-config``);
- :mod:`~swatkit.support.inputs`: the bounded reader of every file a user names, and the one
  integer check;
- :mod:`~swatkit.support.processes`: child processes that end with swatkit (process groups);
- :mod:`~swatkit.support.toolchain`: finding Verilator;
- :mod:`~swatkit.support.build_cache`: the Verilator build cache;
- :mod:`~swatkit.support.progress`: progress lines on stderr;
- :mod:`~swatkit.support.boards`: the FPGA boards (data: platform, device, clock, default
  core), read by the flows, the CLI and the FuseSoC core's synthesis targets.
"""
