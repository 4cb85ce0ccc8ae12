"""One table per transport, applied by ``map_exceptions``: a library exception in, the mapped Farm error out."""

from __future__ import annotations

import paramiko
import pytest
from adbutils import AdbError

from actors.transports.adb import ADB_ERRORS
from actors.transports.errors import ErrorTable, map_exceptions
from actors.transports.ssh import SSH_ERRORS
from farm import errors
from farm.errors import ConnectionLostError, DeviceOfflineError, FarmError, InfraError, RunRefused, SecurityError

WHERE = "pixel-1 (127.0.0.1:6000 via adb server 127.0.0.1:5037)"


def _mapped(table: ErrorTable, exc: BaseException, *, offline: bool = False) -> FarmError:
    with pytest.raises(FarmError) as info, map_exceptions(table, WHERE, offline=offline):
        raise exc
    assert info.value.__cause__ is exc  # the library's exception stays in the traceback
    return info.value


@pytest.mark.parametrize(
    ("exc", "farm_type"),
    [
        (AdbError("device offline"), ConnectionLostError),
        (ConnectionResetError(104, "Connection reset by peer"), ConnectionLostError),
        (EOFError("stream closed after 3 of 8 bytes"), ConnectionLostError),
        (TimeoutError("timed out"), ConnectionLostError),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else v.__name__,
)
def test_adb_table_maps_library_faults_to_a_lost_link(exc: BaseException, farm_type: type[FarmError]) -> None:
    got = _mapped(ADB_ERRORS, exc)
    assert type(got) is farm_type
    assert str(got) == f"{WHERE}: {exc}"


def test_offline_makes_a_link_fault_before_the_device_was_reached_device_offline() -> None:
    got = _mapped(ADB_ERRORS, ConnectionRefusedError(111, "Connection refused"), offline=True)
    assert type(got) is DeviceOfflineError and "Connection refused" in str(got)
    # offline changes only the link's class: a refusal stays a refusal
    key = paramiko.RSAKey.generate(1024)
    refused = _mapped(SSH_ERRORS, paramiko.BadHostKeyException("box", key, key), offline=True)
    assert type(refused) is SecurityError


def test_the_most_specific_library_type_wins_whatever_the_order() -> None:
    # BadHostKeyException and AuthenticationException are SSHExceptions, listed before them or not
    reordered: ErrorTable = dict(reversed(list(SSH_ERRORS.items())))
    key = paramiko.RSAKey.generate(1024)
    for table in (SSH_ERRORS, reordered):
        assert type(_mapped(table, paramiko.AuthenticationException("no"))) is SecurityError
        assert type(_mapped(table, paramiko.BadHostKeyException("box", key, key))) is SecurityError
        assert type(_mapped(table, paramiko.SSHException("Error reading SSH protocol banner"))) is ConnectionLostError


def test_an_exception_without_a_message_is_named_by_its_class() -> None:
    assert str(_mapped(SSH_ERRORS, EOFError())) == f"{WHERE}: EOFError"


def test_farm_errors_and_unmapped_exceptions_pass_through_untouched() -> None:
    ours = RunRefused("invalid environment variable name 'A-B'")
    with pytest.raises(RunRefused) as info, map_exceptions(ADB_ERRORS, WHERE, offline=True):
        raise ours
    assert info.value is ours and info.value.__cause__ is None
    with pytest.raises(KeyError), map_exceptions(ADB_ERRORS, WHERE):  # a bug stays a bug
        raise KeyError("slot")


def test_every_table_maps_into_the_tree_and_only_to_what_a_device_may_raise() -> None:
    for table in (ADB_ERRORS, SSH_ERRORS):
        for source, target in table.items():
            assert issubclass(source, BaseException) and not issubclass(source, FarmError)
            assert issubclass(target, InfraError | SecurityError), target
            assert target.__name__ in (errors.__doc__ or "")
