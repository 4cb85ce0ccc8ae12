"""``farm validate``: every class of bad input exits 2 with ``<file>: <field path>: <reason>`` lines."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from farm.cli.main import main
from farm.specs.loading import MAX_BYTES, MAX_NODES

BAD = Path(__file__).resolve().parents[1] / "data" / "bad"
REPO = Path(__file__).resolve().parents[2]


def validate(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, list[str], str]:
    code = main(["validate", *map(str, args)])
    out, err = capsys.readouterr()
    return code, err.splitlines(), out


def assert_usage_error(code: int, lines: list[str]) -> None:
    assert code == 2
    assert lines, "a bad file must explain itself on stderr"
    assert not any("Traceback" in line for line in lines)


# (file, expected "field path: reason start" fragments, one per stderr line, in any order)
CASES = [
    ("unknown_keys.yaml", ["comand: unknown key", "devices.placment: unknown key"]),
    ("wrong_type_axis.yaml", ["grid.threads[2]: expected a number, string or boolean, got list"]),
    ("wrong_type_repeat.yaml", ["repeat: Input should be a valid integer"]),
    ("empty_grid.yaml", ["grid: the grid is empty"]),
    ("empty_axis.yaml", ["grid.threads: empty axis"]),
    ("undefined_template.yaml", ["command[2]: '{thread}' is not a grid axis (axes: threads)"]),
    ("undefined_template_env.yaml", ["env.DEVICE: '{device.serial}' is not a grid axis"]),
    ("zip_keys_differ.yaml", ["grid.zip[1]: keys ['core', 'threads'] differ from the group's first row"]),
    ("negative_timeout.yaml", ["timeout: must be positive, got -5"]),
    (
        "zero_timeout.yaml",
        ["timeout: must be positive, got '0s'", "cooldown.max_wait: must be positive, got 0"],
    ),
    ("duplicate_ids.yaml", ["devices[2].id: duplicate device id 'a' (first at devices[0])"]),
    ("not_yaml.yaml", ["not valid YAML: line 2, column 9: did not find expected ',' or ']'"]),
    ("not_a_mapping.yaml", ["expected a mapping at the top level, got a list"]),
    ("latin1.yaml", ["not UTF-8 text"]),
]


@pytest.mark.parametrize(("name", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_file_exits_2_with_field_paths(capsys: pytest.CaptureFixture[str], name: str, expected: list[str]) -> None:
    path = BAD / name
    code, lines, out = validate(capsys, path)
    assert_usage_error(code, lines)
    assert out == ""
    assert len(lines) == len(expected), lines
    for fragment in expected:
        assert any(line.startswith(f"{path}: {fragment}") for line in lines), (fragment, lines)


def test_literal_password_names_the_path_and_the_fix(capsys: pytest.CaptureFixture[str]) -> None:
    path = BAD / "literal_password.yaml"
    code, lines, _ = validate(capsys, path)
    assert_usage_error(code, lines)
    assert lines == [
        f"{path}: devices[0].ssh.password: literal secret: never write 'password' in a file; put it in an "
        "environment variable and reference it as 'password_env: VAR_NAME'"
    ]
    # The value itself must never be echoed back.
    assert "hunter2" not in lines[0]


def test_parameters_that_merely_mention_tokens_are_not_secrets(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    job = tmp_path / "tokens.yaml"
    job.write_text(
        "name: tokens\nworkload: json\ncommand: [bench, '{max_tokens}', '{threads}']\n"
        "env: {N_TOKENS: 64}\ngrid: {max_tokens: 128, threads: [1, 2]}\n"
    )
    code, lines, out = validate(capsys, job)
    assert (code, lines) == (0, [])
    assert "2 points" in out


def test_job_env_token_is_a_secret(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    job = tmp_path / "hf.yaml"
    job.write_text("name: hf\nworkload: json\ncommand: [bench]\nenv: {HF_TOKEN: hf_abc}\n")
    code, lines, _ = validate(capsys, job)
    assert_usage_error(code, lines)
    assert lines[0].startswith(f"{job}: env.HF_TOKEN: literal secret")


def test_alias_bomb_fails_fast(capsys: pytest.CaptureFixture[str]) -> None:
    path = BAD / "alias_bomb.yaml"
    start = time.perf_counter()
    code, lines, _ = validate(capsys, path)
    elapsed = time.perf_counter() - start
    assert_usage_error(code, lines)
    assert lines == [f"{path}: document expands to more than {MAX_NODES} nodes (YAML alias bomb or huge file)"]
    assert elapsed < 3.0  # without the guard it does not end at all


def test_huge_file_is_refused_before_parsing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text("name: huge\n" + "#" * MAX_BYTES + "\n")
    code, lines, _ = validate(capsys, path)
    assert_usage_error(code, lines)
    assert lines == [f"{path}: file is {MAX_BYTES + 12} bytes; the limit is {MAX_BYTES}"]


def test_missing_file_and_directory(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    code, lines, _ = validate(capsys, missing, tmp_path)
    assert_usage_error(code, lines)
    assert lines == [
        f"{missing}: cannot read file: No such file or directory",
        f"{tmp_path}: cannot read file: it is a directory, not a regular file",
    ]


def test_binary_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF\x03\x00\x00\x00" + bytes(range(256)))
    code, lines, _ = validate(capsys, path)
    assert_usage_error(code, lines)
    assert len(lines) == 1 and lines[0].startswith(f"{path}: ")


def test_every_file_is_reported_not_only_the_first(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, out = validate(
        capsys,
        BAD / "empty_grid.yaml",
        REPO / "jobs" / "lightcode-search.yaml",
        BAD / "negative_timeout.yaml",
    )
    assert code == 2
    assert [line.split(": ")[0] for line in lines] == [
        str(BAD / "empty_grid.yaml"),
        str(BAD / "negative_timeout.yaml"),
    ]
    assert "lightcode-search" in out


def test_good_files_summarise(capsys: pytest.CaptureFixture[str]) -> None:
    inv = REPO / "deploy" / "inventory.example.yaml"
    code, lines, out = validate(capsys, "--inventory", inv, inv, REPO / "jobs" / "llm-tpu-qwen.yaml")
    assert (code, lines) == (0, [])
    assert out.splitlines() == [
        f"{inv}: ok: inventory, 6 devices (3 android, 1 ascend, 1 host, 1 sophgo), 8 slots",
        f"{REPO / 'jobs' / 'llm-tpu-qwen.yaml'}: ok: job 'llm-tpu-qwen', 2 points × 3 repeats = 6 runs "
        "on each of 2 devices (12 in all)",
    ]


def test_job_matching_no_device(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text("devices:\n  - {kind: host, id: h}\n")
    job = tmp_path / "job.yaml"
    job.write_text("name: j\nworkload: json\ncommand: [x]\ndevices: {kind: android}\n")
    code, lines, _ = validate(capsys, "--inventory", inv, job)
    assert_usage_error(code, lines)
    assert lines == [f"{job}: devices: matches no device of the inventory"]


def test_missing_artifact_with_check(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text("name: j\nworkload: json\ncommand: [x]\nartifacts: [{src: bin/bench, dst: /data/local/tmp/}]\n")
    assert validate(capsys, job)[0] == 0
    code, lines, _ = validate(capsys, "--check-artifacts", job)
    assert_usage_error(code, lines)
    assert lines == [f"{job}: artifacts[0].src: no such file: {tmp_path / 'bin' / 'bench'}"]


def test_an_inventory_given_alone_is_judged_as_an_inventory(capsys: pytest.CaptureFixture[str]) -> None:
    path = BAD / "inventory_devices_not_a_list.yaml"
    code, lines, _ = validate(capsys, path)
    assert_usage_error(code, lines)
    assert lines == [f"{path}: devices: Input should be a valid list"]  # not "command: required key is missing"


def test_every_error_of_a_file_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    path = BAD / "every_error_at_once.yaml"
    code, lines, _ = validate(capsys, path)
    assert_usage_error(code, lines)
    assert [line.removeprefix(f"{path}: ") for line in lines] == [
        "repeat: Input should be greater than or equal to 1",
        "grid.threads[1]: duplicate value 1",
        "grid.batch: empty axis: give at least one value",
        "command[1]: '{thread}' is not a grid axis (axes: batch, threads) or device field",
        "command[2]: unbalanced '{' in '{oops' (write '{{' for a literal brace)",
        "env.X: '{nope}' is not a grid axis (axes: batch, threads) or device field",
        "workload_options: codl_op: warmup_rounds must be an integer, got inf",
    ]


def test_a_template_a_device_cannot_fill(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text("devices:\n  - {kind: host, id: h, labels: {soc: x86}}\n  - {kind: host, id: g}\n")
    job = tmp_path / "job.yaml"
    job.write_text("name: j\nworkload: json\ncommand: [x, '{device.label.soc}']\n")
    code, lines, _ = validate(capsys, "--inventory", inv, job)
    assert_usage_error(code, lines)
    assert lines == [f"{job}: command[1]: '{{device.label.soc}}' has no value for this run on device g"]


@pytest.mark.parametrize(
    ("job_text", "expected"),
    [
        ("devices: {kind: android}\n", "devices: matches no device of the inventory"),
        ("command: [x, '{device.chip}']\n", "command[1]: '{device.chip}' has no value for this run on device h"),
    ],
)
def test_run_refuses_before_ray_starts(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    job_text: str,
    expected: str,
) -> None:
    from farm import runtime

    def no_ray(*args: object, **kwargs: object) -> None:
        raise AssertionError("Ray was started for a job that cannot run")

    monkeypatch.setattr(runtime, "init_ray", no_ray)
    inv = tmp_path / "inv.yaml"
    inv.write_text("devices:\n  - {kind: host, id: h}\n")
    job = tmp_path / "job.yaml"
    job.write_text("name: j\nworkload: json\n" + ("" if "command" in job_text else "command: [x]\n") + job_text)
    code = main(["run", str(job), "--inventory", str(inv), "--no-progress"])
    _, err = capsys.readouterr()
    assert code == 2
    assert err.splitlines() == [f"{job}: {expected}"]
