"""Scripted stand-ins for the benchmark binaries the farm runs on phones, with a documented speed model.

The stand-ins live in :mod:`farm.sim.llama_standin` and :mod:`farm.sim.codl_standin`, their shared pieces in
:mod:`farm.sim.standin_model`; :func:`register_workloads` puts them in a phone's command table.

* **llama.cpp / elastic-infer** — any pushed executable whose basename starts with ``mymain`` or ``llama``
  (``mymain-t-aarch64``, ``mymain-nt-aarch64``, ``llama-cli``…). Takes the options of llama.cpp's ``main``
  (``-m -t -n -p -b -c -s -ngl --temp --attn-sp --ffn-sp``, sampling options, ``--num-cross-layers`` ahead of
  the fork) and refuses any other like llama.cpp (``error: unknown argument: X``, exit 1). Reads
  ``LLAMA_LOAD_SPARSE_TENSOR``, ``LLAMA_USE_OUT_DIM_INDEX_CACHE``, ``LLAMA_COMPUTING_THREAD_CPU_CORE_IDS``.
  The elastic-infer builds ``mymain-{nt,t}-aarch64`` also need ``libc++_shared.so`` and ``liburing.so.2.8``
  on ``LD_LIBRARY_PATH`` (else the linker's ``CANNOT LINK EXECUTABLE``) and a model of their weight layout
  (``-t-`` binary with a ``-t-`` model). Prints generated words on stdout and
  ``llm_load_tensors``/``llama_print_timings:`` lines on stderr.
* **CoDL** — basename ``codl_op_run``: parses its flags as gflags does with the tool's own definitions
  (:data:`~farm.sim.codl_standin.CODL_FLAGS`; ``ERROR: unknown command line flag``,
  ``illegal value '2' specified for bool flag``);
  prints the OpenCL runtime lines (as the tool does on every run, CPU-only included), MACE-style
  ``Round <i>, latency <ms> ms`` lines and
  ``Stat: si 10, stat [..], std_pect [..]`` whose vectors follow ``MACE_DURATION_COLLECT_GRANULARITY``
  (empty unset, the round latency for ``Coarse``; for ``Fine`` the 8 data-sharing stages and the compute with
  ``--data_transform``, else the round latency as one stage — the real tool splits some ops further).

The numbers are a model, not a measurement, and every run says so on stderr (``# synthetic output from farm
virtual phone``). They are reproducible for a phone seed: the n-th run of a command line draws the same noise.
Reported times are "phone seconds"; the process itself runs for a scaled wall time
(:class:`farm.sim.state.SimConfig`) during which ``/proc/<pid>/status`` shows its memory growing.

Speed model (llama): per decoded token ``max(compute, ram_io, flash_io) + 0.15·min(compute, flash_io) + sync``;
``compute = params × active / Σ core speed`` (big core = 1, little = ``SocProfile.little_speed``);
``active = 1 − (attn_sp/3 + 2·ffn_sp/3)·0.9``; with ``LLAMA_LOAD_SPARSE_TENSOR=1`` the active weights stream
from flash each token at the phone's :class:`~farm.sim.soc.StorageProfile` bandwidth
(``LLAMA_USE_OUT_DIM_INDEX_CACHE=1`` serves ``cache_hit`` of them from RAM) and the resident set shrinks;
``sync`` is the profile's per-thread handshake, paid by decoding only. The prompt is evaluated densely in
batches of ``min(-b, prompt tokens)`` tokens per weight pass. The three storage profiles put a phone in each
regime of the elastic-infer bound analysis (``flash``, ``ram``, ``sync``).
"""

from __future__ import annotations

from farm.sim.codl_standin import CODL_NAME, codl_op_run
from farm.sim.llama_standin import LLAMA_PREFIXES, llama_binary
from farm.sim.shell_io import CommandTable


def register_workloads(table: CommandTable) -> None:
    """Make every pushed executable named like a llama.cpp build or ``codl_op_run`` run its stand-in."""
    for prefix in LLAMA_PREFIXES:
        table.register_binary(prefix, llama_binary)
    table.register_binary(CODL_NAME, codl_op_run)
