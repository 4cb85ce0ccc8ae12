"""The bad-input corpus through ``farm validate``: exit 2, the file and the field path named, under 2 s each,
in bounded memory (a subprocess under an address-space limit), never a hang or a traceback.

Every file in ``tests/data/bad`` must have its expected lines here; the test also generates what cannot live in a
repository (a FIFO, ``/dev/zero``, a 10 GB sparse file, a document at the node limit).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from farm.specs.loading import MAX_BYTES, MAX_NODES

BAD = Path(__file__).resolve().parents[1] / "data" / "bad"

# `farm validate` needs about 420 MiB of address space on this stack (measured: Python + pydantic + pyarrow +
# duckdb imports fail below 416 MiB); 640 MiB leaves room for the worst document and none for the failures this
# corpus is about: before the fixes, grid_three_big_ranges.yaml and /dev/zero ended in MemoryError under it, and
# grid_10_axes_exclude.yaml and the FIFO never ended.
ADDRESS_SPACE = 640 << 20
SECONDS_PER_FILE = 2.0

# file → the "<field path>: <reason>" starts expected, one per stderr line (after "<file>: ").
EXPECTED: dict[str, list[str]] = {
    "alias_bomb.yaml": [f"document expands to more than {MAX_NODES} nodes"],
    "bad_env_and_mode.yaml": [
        "artifacts[0].mode: expected an octal file mode",
        "env.OK: Input should be a valid string",
    ],
    "booleans_as_numbers.yaml": [
        "devices.limit: Input should be a valid integer",
        "repeat: Input should be a valid integer",
        "warmup: Input should be a valid integer",
        "seed: Input should be a valid integer",
        "retries: Input should be a valid integer",
    ],
    "cores_in_zip.yaml": ["grid.zip[1].cores: bad core list 'little'"],
    "cores_not_a_core_list.yaml": [
        "grid.cores[0]: bad core list 'big'",
        "grid.cores[2]: bad core list '4-999999999999'",
        "grid.cores[3]: expected a core list such as '0-3' or '4,5,6,7', got 5.5",
    ],
    "deep_nesting.yaml": ["nesting deeper than 64 levels"],
    "duplicate_ids.yaml": ["devices[2].id: duplicate device id 'a' (first at devices[0])"],
    "duplicate_keys.yaml": [
        "grid.threads: duplicate key: first at line 6, again at line 7",
        "repeat: duplicate key: first at line 4, again at line 9",
    ],
    "empty_axis.yaml": ["grid.threads: empty axis"],
    "empty_grid.yaml": ["grid: the grid is empty"],
    "every_error_at_once.yaml": [
        "repeat: Input should be greater than or equal to 1",
        "grid.threads[1]: duplicate value 1",
        "grid.batch: empty axis",
        "command[1]: '{thread}' is not a grid axis (axes: batch, threads)",
        "command[2]: unbalanced '{' in '{oops'",
        "env.X: '{nope}' is not a grid axis",
        "workload_options: codl_op: warmup_rounds must be an integer, got inf",
    ],
    "exclude_removes_all_of_big_grid.yaml": ["grid.exclude: excludes every point of the grid"],
    "grid_10_axes_exclude.yaml": [f"grid: the grid has {10**30} points (before exclude); the limit is 1000000"],
    "grid_range_too_long.yaml": ["grid.x: range has more than 10^60 values"],
    "grid_three_big_ranges.yaml": [f"grid: the grid has {10**18} points (before exclude); the limit is 1000000"],
    "inf_numbers.yaml": [
        "timeout: at most 30 days (2592000 s), got inf",
        "cooldown.max_temp_c: Input should be a finite number",
        "cooldown.margin_c: Input should be a finite number",
        "cooldown.max_wait: expected a duration",
        "cooldown.poll: at most 30 days",
    ],
    "int_beyond_64_bits.yaml": [
        "seed: integers must fit in 64 bits",
        "grid.n[1]: integers must fit in 64 bits",
        "grid.m.stop: integers must fit in 64 bits",
    ],
    "inventory_devices_not_a_list.yaml": ["devices: Input should be a valid list"],
    "inventory_every_error.yaml": [
        "devices[1].synthetic: Input should be a valid boolean",
        "devices[2]: Input tag 'phone' found using 'kind' does not match",
        "devices[1].id: duplicate device id 'a' (first at devices[0])",
    ],
    "inventory_hostile_strings.yaml": [
        "devices[0].ssh.host: '127.0.0.1; touch x' is not a host name or IP address",
        "devices[0].ssh.port: Input should be greater than or equal to 1",
        "devices[0].ssh.user: '-oProxyCommand=touch x' is not a user name",
        "devices[0].ssh.key_file: '-i/etc/passwd': a path must not start with '-'",
        "devices[0].chips[0]: Input should be a valid integer",
        "devices[1].node: control characters",
        "devices[1].idle_temp_c: Input should be a finite number",
        "devices[1].ssh.host: '-oProxyCommand=x' is not a host name",
        "devices[1].ssh.port: Input should be a valid integer",
        "devices[1].ssh.known_hosts: String should have at least 1 character",
        "devices[1].ssh.connect_timeout_s: Input should be a finite number",
        "devices[2].cores.big[1]: Input should be less than or equal to 1023",
        "devices[2].adb.serial: String should match pattern",
        "devices[2].adb.server_host: '$(reboot)' is not a host name",
        "devices[2].adb.server_port: Input should be less than or equal to 65535",
    ],
    "latin1.yaml": ["not UTF-8 text"],
    "literal_password.yaml": ["devices[0].ssh.password: literal secret"],
    "long_integer.yaml": ["not valid YAML: Exceeds the limit (4300 digits)"],
    "nan_timeout.yaml": ["timeout: must be a finite number, got nan"],
    "negative_timeout.yaml": ["timeout: must be positive"],
    "not_a_mapping.yaml": ["expected a mapping at the top level, got a list"],
    "not_yaml.yaml": ["not valid YAML: line 2, column 9"],
    "nul_in_command.yaml": [
        "env.X: a NUL character cannot be passed to a command",
        "command[0]: a NUL character cannot be passed to a command",
        "grid.s[1]: a NUL character cannot be passed to a command",
    ],
    "secret_duplicate_and_schema.yaml": [
        "timeout: duplicate key: first at line 5, again at line 6",
        "env.HF_TOKEN: literal secret",
        "repeat: Input should be a valid integer",
    ],
    "template_field_of_another_kind.yaml": [
        "command[2]: '{device.chip}' exists only on sophgo devices, not android",
        "env.ASCEND_RT_VISIBLE_DEVICES: '{device.npu}' exists only on ascend devices, not android",
    ],
    "undefined_template.yaml": ["command[2]: '{thread}' is not a grid axis"],
    "undefined_template_env.yaml": ["env.DEVICE: '{device.serial}' is not a grid axis"],
    "unknown_keys.yaml": ["devices.placment: unknown key", "comand: unknown key"],
    "unknown_workload.yaml": [
        "name: 'bad name with spaces' is not a valid name",
        "workload: unknown workload 'no-such-thing'",
        "order: Input should be 'grid', 'interleave' or 'shuffle'",
    ],
    "wrong_type_axis.yaml": ["grid.threads[2]: expected a number, string or boolean, got list"],
    "wrong_type_repeat.yaml": ["repeat: Input should be a valid integer"],
    "zero_timeout.yaml": ["timeout: must be positive", "cooldown.max_wait: must be positive"],
    "zip_keys_differ.yaml": ["grid.zip[1]: keys ['core', 'threads'] differ"],
}


def _generated(tmp: Path) -> dict[Path, list[str]]:
    """Bad inputs that cannot be files in a repository, with their expected lines."""
    fifo = tmp / "fifo.yaml"
    os.mkfifo(fifo)  # no writer ever comes: opening it for reading the usual way blocks forever
    zero = tmp / "zero.yaml"
    zero.symlink_to("/dev/zero")
    sparse = tmp / "sparse.yaml"
    with sparse.open("wb") as fh:
        fh.truncate(10 << 30)  # 10 GB of holes: refused by its size, not read
    big = tmp / "near_node_limit.yaml"  # the costliest document still parsed (just under the node limit)
    items = ",".join(["1"] * (MAX_NODES - 20))
    big.write_text(f"name: big\nworkload: json\ncommand: [bench]\nworkload_options: {{x: [{items}]}}\n")
    over = tmp / "over_node_limit.yaml"
    over.write_text(
        "name: over\nworkload: json\ncommand: [bench]\ngrid: {a: [" + ",".join(map(str, range(MAX_NODES))) + "]}\n"
    )
    return {
        fifo: ["cannot read file: it is a FIFO (named pipe), not a regular file"],
        Path("/dev/zero"): ["cannot read file: it is a character device, not a regular file"],
        zero: ["cannot read file: it is a character device, not a regular file"],
        tmp: ["cannot read file: it is a directory, not a regular file"],
        sparse: [f"file is {10 << 30} bytes; the limit is {MAX_BYTES}"],
        big: ["workload_options: json: unknown options ['x']"],
        over: [f"document has more than {MAX_NODES} nodes"],
    }


# Runs in the child: validates each file through the CLI's entry point and reports code, stderr and time.
_DRIVER = """
import contextlib, io, json, sys, time
from farm.cli.main import build_parser, main
build_parser()  # imports every command module once: start-up, not the cost of a file
for path in sys.argv[1:]:
    err = io.StringIO()
    start, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["validate", path])
    print(json.dumps({"path": path, "code": code, "cpu_s": time.process_time() - cpu,
                      "wall_s": time.perf_counter() - start, "lines": err.getvalue().splitlines()}), flush=True)
"""


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, preexec_fn=_limited, check=False
    )


def _check_lines(path: Path | str, lines: list[str], expected: list[str]) -> None:
    assert len(lines) == len(expected), (path, lines)
    for fragment in expected:
        assert any(line.startswith(f"{path}: {fragment}") for line in lines), (path, fragment, lines)
    assert not any("Traceback" in line for line in lines)


def test_every_corpus_file_has_expectations() -> None:
    assert sorted(p.name for p in BAD.glob("*.yaml")) == sorted(EXPECTED)


def test_corpus_exits_2_naming_file_and_field_fast_in_bounded_memory(tmp_path: Path) -> None:
    cases = {BAD / name: expected for name, expected in EXPECTED.items()} | _generated(tmp_path)
    done = _run(["-c", _DRIVER, *map(str, cases)], timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    reports = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["path"] for r in reports] == [str(p) for p in cases]
    for report, (path, expected) in zip(reports, cases.items(), strict=True):
        assert report["code"] == 2, report
        _check_lines(path, report["lines"], expected)
        # CPU time is the file's cost whatever else the machine runs; wall time only has to show it never waits.
        assert report["cpu_s"] < SECONDS_PER_FILE and report["wall_s"] < 5 * SECONDS_PER_FILE, report


def test_the_real_command_on_the_whole_corpus(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    files = [*sorted(BAD.glob("*.yaml")), fifo, Path("/dev/zero")]
    done = _run(["-m", "farm.cli.main", "validate", *map(str, files)], timeout=120)
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    named = {line.split(": ")[0] for line in done.stderr.splitlines()}
    assert named == {str(f) for f in files}


def test_bad_ports_and_environment_are_usage_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from farm.cli.main import main

    # A bad variable used to crash every command while the parser was built (int() at import of the defaults).
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", "abc")
    assert main(["validate", str(BAD / "empty_grid.yaml")]) == 2
    capsys.readouterr()
    for argv in (["run", "job.yaml", "--metrics-port", "70000"], ["devices", "discover"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        assert "expected a TCP port (1-65535)" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["-1", "soon", "nan", "inf"])
def test_a_bad_batch_window_is_a_usage_error(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    from farm.cli.main import main

    with pytest.raises(SystemExit) as info:
        main(["controller", "start", "--batch-window", value])
    assert info.value.code == 2 and "argument --batch-window: --batch-window must be a" in capsys.readouterr().err
