"""Opening one SSH connection (paramiko) the way Farm requires, and the table that maps paramiko's exceptions.

Host keys are checked against ``known_hosts`` and never added; an unknown or changed key, or failed
authentication, is a :class:`~farm.errors.SecurityError` whose text says what to check (not retried: a wrong key
stays wrong, and repeated failures get the farm banned). Any other fault while connecting is a
:class:`~farm.errors.DeviceOfflineError`. The password, if any, comes from the environment variable the inventory
names (``password_env``); an unset one refuses the run (:class:`~farm.errors.RunRefused`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NoReturn

import paramiko

from actors.transports.errors import ErrorTable, map_exceptions
from farm.errors import ConnectionLostError, RunRefused, SecurityError
from farm.specs.inventory import SshConnection

log = logging.getLogger(__name__)

# AES-GCM first: one AEAD pass instead of AES-CTR plus a separate HMAC per packet, ~40 % less client CPU per
# byte pushed (measured with bench/ssh_upload.py); OpenSSH has offered it since 6.2.
_CIPHERS_FIRST = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


class _UnknownHostKeyError(paramiko.SSHException):
    def __init__(self, hostname: str, key: paramiko.PKey) -> None:
        super().__init__(f"{hostname} not found in known_hosts")
        self.key = key


# paramiko and the socket under it → Farm (see transports/errors.py). A host key or a client key the box refuses is
# a SecurityError (never retried); any other fault is the link's: DeviceOfflineError while connecting
# (offline=True), ConnectionLostError once connected.
SSH_ERRORS: ErrorTable = {
    _UnknownHostKeyError: SecurityError,
    paramiko.BadHostKeyException: SecurityError,
    paramiko.AuthenticationException: SecurityError,
    paramiko.SSHException: ConnectionLostError,
    OSError: ConnectionLostError,
    EOFError: ConnectionLostError,
}


class _RejectUnknownHost(paramiko.RejectPolicy):
    """paramiko's RejectPolicy, keeping the offered key so the error can show its fingerprint."""

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> NoReturn:
        raise _UnknownHostKeyError(hostname, key)


def _gcm_first_transport(
    sock: Any,
    /,
    *,
    gss_kex: bool = False,  # in paramiko's factory signature up to 4.x; GSS-API is not used here
    gss_deleg_creds: bool = True,
    disabled_algorithms: Mapping[str, Iterable[str]] | None = None,
) -> paramiko.Transport:
    """paramiko's transport with AES-GCM moved to the front of the cipher preference (see _CIPHERS_FIRST)."""
    transport = paramiko.Transport(sock, disabled_algorithms=disabled_algorithms)
    options = transport.get_security_options()
    ciphers = tuple(options.ciphers)
    options.ciphers = tuple(c for c in _CIPHERS_FIRST if c in ciphers) + tuple(
        c for c in ciphers if c not in _CIPHERS_FIRST
    )
    return transport


def _password(target: SshConnection, label: str) -> str | None:
    name = target.password_env
    if not name:
        return None
    value = os.environ.get(name)
    if value is None:
        raise RunRefused(f"{label}: password_env: environment variable {name} is not set")
    return value


def connect(t: SshConnection, where: str, label: str) -> paramiko.SSHClient:
    """A new SSH connection to ``t``, host key checked against ``known_hosts``, keepalives on (``where`` and
    ``label`` name the device in errors and log lines)."""
    known_hosts = Path(os.path.expanduser(t.known_hosts))
    hostport = t.host if t.port == 22 else f"[{t.host}]:{t.port}"
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(_RejectUnknownHost())
    try:
        client.load_host_keys(str(known_hosts))
    except FileNotFoundError:
        pass  # every host is unknown: reported below with the file name
    except (OSError, paramiko.SSHException) as exc:
        raise SecurityError(f"{where}: cannot read known_hosts {known_hosts}: {exc}") from exc
    try:
        with map_exceptions(SSH_ERRORS, f"{where}: cannot connect", offline=True):
            client.connect(
                t.host,
                port=t.port,
                username=t.user,
                key_filename=os.path.expanduser(t.key_file) if t.key_file else None,
                password=_password(t, label),
                timeout=t.connect_timeout_s,
                banner_timeout=t.connect_timeout_s,
                auth_timeout=t.connect_timeout_s,
                allow_agent=True,
                look_for_keys=t.key_file is None,
                transport_factory=_gcm_first_transport,
            )
    except SecurityError as exc:
        client.close()
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        raise SecurityError(_refusal(t, where, cause, known_hosts, hostport)) from cause
    except BaseException:
        client.close()
        raise
    transport = client.get_transport()
    assert transport is not None
    # keepalives make a silently dead link (box unplugged) fail within ~a minute instead of at TCP timeout
    transport.set_keepalive(15)
    log.info("%s: connected", where)
    return client


def _refusal(t: SshConnection, where: str, exc: BaseException, known_hosts: Path, hostport: str) -> str:
    """What a connection refused for security says: how to check an unknown key, which key changed, or that
    authentication failed (not retried: a wrong key stays wrong, and repeated failures get the farm banned)."""
    if isinstance(exc, _UnknownHostKeyError):
        fp = exc.key.fingerprint  # "SHA256:..." like ssh-keygen -lf
        return (
            f"{where}: host key not in {known_hosts} (the box offered {exc.key.get_name()} {fp}). "
            f"Add it only after checking that fingerprint on the box itself (ssh-keygen -lf "
            f"/etc/ssh/ssh_host_*_key.pub): ssh-keyscan -p {t.port} {t.host} >> {known_hosts}"
        )
    if isinstance(exc, paramiko.BadHostKeyException):
        return (
            f"{where}: HOST KEY CHANGED for {hostport}: {known_hosts} pins "
            f"{exc.expected_key.fingerprint}, the box offered {exc.key.fingerprint}. Nothing was sent. "
            "If the box was reinstalled, verify the new key and replace the entry "
            f"(ssh-keygen -R '{hostport}' -f {known_hosts}); otherwise this may be an interception"
        )
    return f"{where}: SSH authentication failed: {exc}"


__all__ = ["SSH_ERRORS", "connect"]
