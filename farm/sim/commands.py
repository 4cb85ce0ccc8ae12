"""The command table of a stock virtual phone: its applets plus the farm's scripted benchmark binaries.

Table commands (:func:`default_table`): ``cat ls mkdir rm chmod mv cp touch sha256sum md5sum getprop sleep taskset
uname nproc id env head grep stat date ps timeout dumpsys cmd`` (:mod:`farm.sim.applets_files`,
:mod:`farm.sim.applets_system`), and the stand-ins of :mod:`farm.sim.workloads` for pushed binaries. The shell that
runs them is :mod:`farm.sim.shell_session` (parsing in :mod:`farm.sim.shell_parser`, builtins in
:mod:`farm.sim.shell_builtins`, I/O and the table type in :mod:`farm.sim.shell_io`).
"""

from __future__ import annotations

from farm.sim.applets_files import FILE_APPLETS
from farm.sim.applets_system import SYSTEM_APPLETS
from farm.sim.shell_io import CommandTable
from farm.sim.workloads import register_workloads


def default_table() -> CommandTable:
    """The applets of a stock phone plus the farm's scripted benchmark binaries."""
    table = CommandTable()
    for name, handler in {**FILE_APPLETS, **SYSTEM_APPLETS}.items():
        table.register(name, handler)
    register_workloads(table)
    return table
