"""Running a run's command inside a container on the device (job ``exec: {docker: NAME}``).

Some recipes run only inside a vendor image (Ascend's CANN container): the command is started with
``docker exec -i -w WORKDIR -e K=V… NAME sh -c SCRIPT farm-exec ARGV…``, every argument a separate, quoted word
(the transport quotes argv; nothing here is joined into a shell line). ``SCRIPT`` starts the command under
``setsid`` (its own process group, pgid = its pid), writes that pid to a file inside the container, waits for
it and removes the file.

Why the pid file: ``docker exec`` does not forward signals. Killing the ``docker exec`` client on the host (what
a timeout or cancel does through the transport) leaves the process running in the container, holding the NPU.
So after a timeout or cancel the device runs :func:`kill_argv` — ``docker exec NAME sh -c …`` reading the pid
file and sending TERM, then KILL after a grace period, to the command's whole process group inside the
container. The container must mount the workdir at the same path as the host (artifacts are pushed to the host).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

_GRACE_STEPS = 20  # x 0.1 s between TERM and KILL
_START = 'f=$1; shift; setsid "$@" & echo $! > "$f"; wait $!; rc=$?; rm -f "$f"; exit $rc'
_KILL = (
    'f=$1; [ -f "$f" ] || exit 0; p=$(cat "$f"); [ -n "$p" ] || exit 0; '
    "kill -TERM -$p 2>/dev/null || kill -TERM $p 2>/dev/null; "
    f"i=0; while kill -0 -$p 2>/dev/null && [ $i -lt {_GRACE_STEPS} ]; do sleep 0.1; i=$((i+1)); done; "
    'kill -KILL -$p 2>/dev/null; rm -f "$f"; exit 0'
)


def pid_file(run_id: str, attempt: int) -> str:
    return f"/tmp/farm-exec-{run_id}-{attempt}.pid"  # noqa: S108 - inside the container, one name per run


def docker_argv(
    container: str, argv: Sequence[str], env: Mapping[str, str], workdir: str | None, pidfile: str
) -> list[str]:
    """``docker exec`` of ``argv`` in ``container`` with ``env`` and ``workdir`` applied inside it."""
    out = ["docker", "exec", "-i"]
    if workdir is not None:
        out += ["-w", workdir]
    for key, value in env.items():
        out += ["-e", f"{key}={value}"]
    return [*out, container, "sh", "-c", _START, "farm-exec", pidfile, *argv]


def kill_argv(container: str, pidfile: str) -> list[str]:
    """Kill, inside ``container``, the process group recorded in ``pidfile`` (see the module docstring)."""
    return ["docker", "exec", container, "sh", "-c", _KILL, "farm-kill", pidfile]
