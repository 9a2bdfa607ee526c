"""swatkit/support/inputs.py: the bounded reader of every file a user names — regular files
only (a FIFO, a device, a folder refused at once, never opened for a blocking read), a size
bound, a nesting bound, strict JSON."""

import os
import re
import time

import pytest

from swatkit.support.inputs import (
    MAX_NESTING,
    InputFileError,
    check_int,
    check_nesting,
    load_json,
    load_toml,
    read_bytes,
)


def refused(call, message):
    start = time.monotonic()
    with pytest.raises(InputFileError, match=f"^{re.escape(message)}$"):
        call()
    assert time.monotonic() - start < 1.0   # answered at once (a FIFO read would block)


def test_not_regular_files_are_refused_at_once(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    os.symlink("/dev/zero", tmp_path / "zero")
    refused(lambda: read_bytes(tmp_path / "fifo"), f"{tmp_path / 'fifo'} is a FIFO, not a file")
    refused(lambda: read_bytes("/dev/zero"), "/dev/zero is a device, not a file")
    refused(lambda: load_json(tmp_path / "zero"), f"{tmp_path / 'zero'} is a device, not a file")
    refused(lambda: load_toml(tmp_path), f"{tmp_path} is a folder, not a file")
    refused(lambda: read_bytes(tmp_path / "none"), f"no such file: {tmp_path / 'none'}")
    refused(lambda: load_toml(tmp_path, kind="energy table"),
            f"energy table {tmp_path} is a folder, not a file")
    refused(lambda: load_toml(tmp_path / "none", kind="energy table"),
            f"no such energy table: {tmp_path / 'none'}")
    # a name that is not printable is quoted with escapes: the message stays one line
    refused(lambda: load_toml("\x1e", kind="energy table"), "no such energy table: '\\x1e'")
    broken = tmp_path / "a\nb"
    refused(lambda: read_bytes(broken), f"no such file: {str(broken)!r}")


def test_size_bound(tmp_path):
    path = tmp_path / "big.json"
    path.write_bytes(b" " * 1001 + b"1")
    refused(lambda: load_json(path, limit=1000), f"{path} is larger than 1,000 bytes")
    assert load_json(path, limit=1002) == 1


@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 1000, 200_000])
def test_nesting_bound(tmp_path, depth):
    json_file, toml_file = tmp_path / "d.json", tmp_path / "d.toml"
    json_file.write_text("[" * depth + "]" * depth)
    toml_file.write_text("a = " + "[" * depth + "]" * depth + "\n")
    refused(lambda: load_json(json_file), f"{json_file} nests more than {MAX_NESTING} levels deep")
    refused(lambda: load_toml(toml_file), f"{toml_file} nests more than {MAX_NESTING} levels deep")


def test_nesting_at_the_bound_is_read(tmp_path):
    path = tmp_path / "d.json"
    path.write_text("[" * MAX_NESTING + "]" * MAX_NESTING)
    value = load_json(path)
    for _ in range(MAX_NESTING - 1):
        (value,) = value
    assert value == []
    check_nesting({"a": [{"b": 1}]}, limit=3)
    with pytest.raises(InputFileError, match=r"^x nests more than 2 levels deep$"):
        check_nesting({"a": [{"b": 1}]}, "x", limit=2)


def test_strict_json_and_huge_integers(tmp_path):
    path = tmp_path / "n.json"
    path.write_text('{"scale": NaN}')
    refused(lambda: load_json(path), f"{path} is not valid JSON: NaN is not a JSON number")
    path.write_text('{"n": ' + "9" * 5000 + "}")
    refused(lambda: load_json(path), f"{path} has an integer of more than 4300 digits")
    toml = tmp_path / "n.toml"
    toml.write_text("n = " + "9" * 5000 + "\n")
    refused(lambda: load_toml(toml), f"{toml} has an integer of more than 4300 digits")
    path.write_bytes(b"\xff")
    refused(lambda: load_json(path), f"{path} is not UTF-8 text (a JSON file)")
    path.write_text('{"n": 1000000000000}')
    assert load_json(path) == {"n": 10 ** 12}   # (large but convertible: the caller's range)


@pytest.mark.parametrize(("value", "hi", "message"), [
    (True, 8, "x must be an integer, not True"),
    ("8", 8, "x must be an integer, not '8'"),
    (8.0, 8, "x must be an integer, not 8.0"),
    (9, 8, "x must be an integer in 1..8, not 9"),
    (0, None, "x must be a positive integer, not 0"),
])
def test_one_integer_rule(value, hi, message):
    class RefusedError(Exception):
        pass

    with pytest.raises(RefusedError, match=f"^{re.escape(message)}$"):
        check_int("x", value, 1, hi, RefusedError)
    assert check_int("x", 8, 1, hi) == 8
