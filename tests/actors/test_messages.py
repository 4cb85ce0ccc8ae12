"""How a run's request and result cross Ray (``actors/messages.py``): as bytes, losing nothing."""

from __future__ import annotations

from actors.messages import (
    ArtifactRef,
    RunRequest,
    RunResult,
    pack_requests,
    pack_results,
    unpack_requests,
    unpack_results,
)
from farm.envvars import EnvPrepend


def test_a_request_crosses_as_bytes_with_its_prepends_and_object_refs() -> None:
    ref = object()  # stands in for a Ray ObjectRef: it must travel beside the bytes, never inside them
    art = ArtifactRef("model", "ab" * 32, 3, "/data/m", None, "/tmp/m", ref)
    req = RunRequest("j", "r1", 1, "s", ["x"], {"LD_LIBRARY_PATH": EnvPrepend("/opt/lib", ";")}, None, 5.0, [art])
    plain = RunRequest("j", "r0", 1, "s", ["y"], {}, None, 5.0)
    data, refs = pack_requests([plain, req])
    assert isinstance(data, bytes) and refs == [ref]
    first, back = unpack_requests(data, refs)
    assert first == plain and back == req and back.artifacts[0].ref is ref
    env = back.env["LD_LIBRARY_PATH"]
    assert isinstance(env, EnvPrepend) and env.sep == ";"
    res = RunResult(exit_code=0, stdout="v=1\n", samples={"peak_rss_mib": 2.0})
    assert unpack_results(pack_results([res, None])) == [res, None]


def test_requests_without_object_refs_send_none_beside_the_bytes() -> None:
    art = ArtifactRef("model", "ab" * 32, 3, "/data/m", None, "/tmp/m")
    reqs = [RunRequest("j", f"r{i}", 1, "s", ["x"], {}, None, 5.0, [art]) for i in range(3)]
    data, refs = pack_requests(reqs)
    assert refs == [] and unpack_requests(data, refs) == reqs
