"""A job arriving over HTTP: same messages as the CLI, artifacts only from the request or the artifact root."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from farm.api.auth import load_token, token_matches
from farm.api.intake import UPLOAD_PREFIX, load_job_text, place_artifacts
from farm.errors import ConfigError
from farm.specs.job import load_job


def job_yaml(**over: Any) -> bytes:
    data = {
        "name": "j",
        "workload": "regex",
        "workload_options": {"patterns": {"v_ms": "v=(\\d+)"}},
        "command": ["sh", "/tmp/x/run.sh"],
        **over,
    }
    return yaml.safe_dump(data).encode()


def issues(src: str, uploads: dict[str, bytes] | None = None, root: Path | None = None) -> list[str]:
    job = load_job_text(job_yaml(artifacts=[{"src": src, "dst": "/tmp/x/"}]), "job.yaml")
    with pytest.raises(ConfigError) as err:
        place_artifacts(job, "job.yaml", uploads or {}, root, ship=False)
    return err.value.lines()


def test_bad_job_has_the_lines_the_cli_prints(tmp_path: Path) -> None:
    raw = job_yaml(repeat=0, grid={"t": []}, password="hunter2")
    path = tmp_path / "bad.yaml"
    path.write_bytes(raw)
    with pytest.raises(ConfigError) as cli:
        load_job(path)
    with pytest.raises(ConfigError) as api:
        load_job_text(raw, str(path))
    assert api.value.lines() == cli.value.lines()
    assert any("repeat" in line for line in api.value.lines())
    assert any("literal secret" in line for line in api.value.lines())


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"name: [unclosed", "not valid YAML"),
        (b"\xff\xfe", "not UTF-8"),
        (b"- a list", "expected a mapping"),
        (
            b"a: &a [1]\n"
            + b"".join(
                b"b%d: &b%d [*%s, *%s]\n"
                % (i, i, b"a" if i == 0 else b"b%d" % (i - 1), b"a" if i == 0 else b"b%d" % (i - 1))
                for i in range(40)
            ),
            "alias",
        ),
        (b"x: 1\n" * 10 + b"#" * (1 << 20), "the limit is"),
    ],
)
def test_hostile_yaml_is_refused_in_bounded_time(raw: bytes, reason: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_job_text(raw, "job.yaml")
    assert reason in str(err.value)
    assert all(line.startswith("job.yaml: ") for line in err.value.lines())


@pytest.mark.parametrize("src", ["/etc/shadow", "~/.ssh/id_ed25519", "../../etc/passwd", "a/../../b", "a\\b"])
def test_paths_of_the_head_node_are_refused(src: str, tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    assert issues(src, {}, tmp_path / "root")[0].startswith("job.yaml: artifacts[0].src: must ")
    # Uploaded under that name, the bytes come from the request: nothing of the head node is read.
    job = load_job_text(job_yaml(artifacts=[{"src": src, "dst": "/tmp/x/"}]), "job.yaml")
    [art] = place_artifacts(job, "job.yaml", {src: b"bytes"}, tmp_path / "root", ship=False).artifacts
    assert (art.local_path, art.sha256) == (UPLOAD_PREFIX + src, hashlib.sha256(b"bytes").hexdigest())


def test_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret").write_text("s3cret")
    (root / "link").symlink_to(tmp_path / "secret")
    (root / "dir").symlink_to(tmp_path)
    assert issues("link", root=root) == [
        "job.yaml: artifacts[0].src: resolves outside the artifact root (through a symlink)"
    ]
    assert "outside the artifact root" in issues("dir/secret", root=root)[0]
    assert issues("missing.bin", root=root) == [
        "job.yaml: artifacts[0].src: no such file under the artifact root: missing.bin"
    ]


def test_without_root_only_uploads(tmp_path: Path) -> None:
    assert "not uploaded with the request" in issues("model.bin")[0]
    assert issues("other.bin", {"model.bin": b"x", "other.bin": b"y"}) == [
        "job.yaml: artifacts: uploaded file 'model.bin' is no artifact's src"
    ]


def test_uploads_and_root_files_are_hashed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "models").mkdir(parents=True)
    (root / "models" / "m.bin").write_bytes(b"model bytes")
    arts = [{"src": "run.sh", "dst": "/tmp/x/", "mode": "0755"}, {"src": "models/m.bin", "dst": "/tmp/x/m.bin"}]
    job = load_job_text(job_yaml(artifacts=arts), "job.yaml")
    placed = place_artifacts(job, "job.yaml", {"run.sh": b"echo v=1\n"}, root, ship=False)
    up, model = placed.artifacts
    assert (up.name, up.sha256, up.size, up.dst, up.local_path) == (
        "run.sh",
        hashlib.sha256(b"echo v=1\n").hexdigest(),
        9,
        "/tmp/x/run.sh",
        UPLOAD_PREFIX + "run.sh",
    )
    assert up.mode == 0o755
    assert (model.sha256, model.local_path) == (
        hashlib.sha256(b"model bytes").hexdigest(),
        str(root / "models" / "m.bin"),
    )


def test_token_by_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "token"
    f.write_text("a" * 32 + "\n")
    assert load_token(str(f), None) == "a" * 32
    monkeypatch.setenv("MY_TOKEN", "b" * 20)
    assert load_token(None, "MY_TOKEN") == "b" * 20
    monkeypatch.delenv("FARM_API_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="FARM_API_TOKEN is not set"):
        load_token(None, None)
    f.write_text("short")
    with pytest.raises(ConfigError, match="at least 16 characters"):
        load_token(str(f), None)
    assert token_matches("Bearer " + "a" * 32, "a" * 32)
    assert not token_matches("Bearer " + "a" * 31, "a" * 32)
    assert not token_matches("Basic " + "a" * 32, "a" * 32)
    assert not token_matches(None, "a" * 32)


BAD = Path(__file__).resolve().parents[1] / "data" / "bad"


@pytest.mark.parametrize("path", sorted(BAD.glob("*.yaml")), ids=lambda p: p.name)
def test_the_bad_input_corpus_gets_the_cli_lines_over_http(path: Path) -> None:
    with pytest.raises(ConfigError) as cli:
        load_job(path, check_artifacts=False)
    with pytest.raises(ConfigError) as api:
        load_job_text(path.read_bytes(), str(path))
    assert api.value.lines() == cli.value.lines()
