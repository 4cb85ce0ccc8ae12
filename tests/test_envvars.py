"""Env prepends: one value carried as a str, applied in Python (local) and by the device's own shell (remote)."""

from __future__ import annotations

import pickle
import subprocess

import pytest

from actors.transports.local import LocalTransport
from actors.transports.remote_shell import prelude
from farm.envvars import EnvPrepend, apply_env, describe_env
from farm.sim.phone import VirtualPhone

LIB = "/data/local/tmp/elastic-infer"


def test_a_prepend_is_a_string_that_survives_pickling() -> None:
    value = EnvPrepend(LIB, ":")
    again = pickle.loads(pickle.dumps(value))
    assert isinstance(again, EnvPrepend) and again == LIB and again.sep == ":"
    assert apply_env({"LD_LIBRARY_PATH": "/vendor/lib64", "X": "1"}, {"LD_LIBRARY_PATH": value}) == {
        "LD_LIBRARY_PATH": f"{LIB}:/vendor/lib64",
        "X": "1",
    }
    # unset or empty: the value alone, never a trailing ":" (which would add the current directory)
    assert apply_env({}, {"P": value}) == {"P": LIB} and apply_env({"P": ""}, {"P": value}) == {"P": LIB}
    assert describe_env({"P": value, "Q": "q"}) == {"P": f"{LIB}:$P", "Q": "q"}
    with pytest.raises(ValueError, match="separator"):
        EnvPrepend("x", "$")


def test_remote_line_quotes_the_value_and_expands_only_the_devices_variable() -> None:
    hostile = EnvPrepend("/data/a b'; rm -rf /;$(id)", ";")
    (line,) = prelude({"PATHS": hostile}, None)
    assert line == """export PATHS='/data/a b'"'"'; rm -rf /;$(id)'"${PATHS:+;$PATHS}\""""
    # a real POSIX shell reads it back literally, with and without an existing value
    for existing, expected in (("/vendor/lib", "/data/a b'; rm -rf /;$(id);/vendor/lib"), ("", hostile)):
        out = subprocess.run(
            ["sh", "-c", f'{line}; printf %s "$PATHS"'],
            env={"PATHS": existing} if existing else {},
            capture_output=True,
            text=True,
            check=True,
        )
        assert out.stdout == expected


def test_virtual_phone_shell_applies_the_prepend_like_mksh() -> None:
    phone = VirtualPhone("env-test")
    try:
        (first,) = prelude({"LD_LIBRARY_PATH": EnvPrepend(LIB)}, None)
        (second,) = prelude({"LD_LIBRARY_PATH": EnvPrepend("/data/other")}, None)
        r = phone.shell(f'{first}; echo "[$LD_LIBRARY_PATH]"; {second}; echo "[$LD_LIBRARY_PATH]"')
        assert r.exit_code == 0 and r.stdout == f"[{LIB}]\n[/data/other:{LIB}]\n"
        r = phone.shell('echo "${NOPE:-fallback} ${HOME:+home-set} ${NOPE+x}." ${HOME-unset}')
        assert r.stdout == "fallback home-set . /\n"
    finally:
        phone.close()


def test_local_transport_prepends_to_the_inherited_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FARM_TEST_PATHS", "/inherited")
    done = LocalTransport().run(
        ["sh", "-c", 'printf %s "$FARM_TEST_PATHS"'], env={"FARM_TEST_PATHS": EnvPrepend("/first", ",")}
    )
    assert done.exit_code == 0 and done.stdout == "/first,/inherited"
