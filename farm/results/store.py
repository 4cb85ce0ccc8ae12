"""The results store: a Parquet dataset of run outcomes, hive-partitioned by job, in atomic part files.

Layout under the root (a local directory or any ``pyarrow.fs`` URI such as ``file:///…`` or ``s3://…``)::

    <root>/runs/job=<job>/part-<utc timestamp>-<uuid>.parquet    one file per writer flush (or per compaction)
    <root>/logs/<job>/<run_id>-<attempt>.log                     the raw output of each run (never overwritten)
    <root>/jobs/<job>/<job_id>.json                              a record per cancelled submission
    <root>/locks/<job>.writer.lock                               held by the job's one writer
    <root>/files/<job>/<run_id>-<attempt>/<path>                 files a run left on the device (``collect:``)

On a local disk a part file is written as ``.part-….tmp``, fsynced and renamed into place only once complete, so
a crash leaves at worst a dot-file that every reader skips, never a torn ``.parquet``. Object stores have no
rename: there the file is serialized in memory and uploaded under its final name, which an object store shows
only once the upload completed (see :meth:`ResultsStore.write_atomic`). The ``job``
column is the partition directory; readers add it back.

Duplicates: a writer (:mod:`farm.results.writer`) drops a row whose ``(run_id, attempt)`` it has already
written or that was in the job's partition when it opened. A writer holds its job's partition alone: it takes
the lock ``<root>/locks/<job>.writer.lock`` (an OS file lock, released when the writer closes or its process
dies) and a second writer of the same job, in this process or another, is refused with
:class:`~farm.errors.ResultsError` (local stores; on object stores the controller keeps one writer per job).
Job-level records (a cancelled submission's counts) are JSON files ``<root>/jobs/<job>/<job_id>.json``.
:meth:`ResultsStore.compact` writes the merged file before deleting the files it replaces, so a crash in between
leaves rows twice until the next ``compact`` (which removes them); readers may see them twice during that
window. Every read goes through :func:`~farm.results.schema.with_slot`, so a file written before the ``slot``
column reads (and compacts) as today's rows. A reader that finds a listed
file gone (deleted by a compaction between the listing and the read; on S3 nothing makes a folder's listing atomic)
lists the job's files again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from farm.errors import ResultsError
from farm.locks import FileLock
from farm.results import run_logs
from farm.results.location import refuse_credentials
from farm.results.schema import check_job_name, empty_table, kind_of_arrow, with_slot

if TYPE_CHECKING:
    from farm.results.writer import ResultsWriter

log = logging.getLogger(__name__)

DEFAULT_ROOT = "./farm-results"
PART_PREFIX = "part-"
PART_SUFFIX = ".parquet"
#: Part files at least this large are left alone by :meth:`ResultsStore.compact`.
SMALL_FILE_BYTES = 32 * 1024 * 1024
_T = TypeVar("_T")
#: How often a reader lists a job's files again when one vanished under it (each time, a compaction finished).
_READ_ATTEMPTS = 5


class _PartVanished(ResultsError):
    """A part file listed a moment ago is gone: a compaction replaced it."""


@dataclass(frozen=True)
class CompactionResult:
    """What :meth:`ResultsStore.compact` did to one job's partition."""

    job: str
    files_before: int
    files_after: int
    rows_before: int
    rows_after: int


def _is_part_file(name: str) -> bool:
    return name.startswith(PART_PREFIX) and name.endswith(PART_SUFFIX)


def _part_name() -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{PART_PREFIX}{stamp}-{uuid.uuid4().hex}{PART_SUFFIX}"


def _dictionary_columns(schema: pa.Schema) -> list[str]:
    """Columns worth dictionary-encoding: text, integers and grid parameters, which take few distinct values.

    Measurements (float metrics, timestamps) are left plain: Arrow would try a dictionary on each and give it
    up once it grows, which cost a quarter of the write time and made files larger (docs/results.md).
    """
    return [
        f.name for f in schema if f.name.startswith("p_") or pa.types.is_string(f.type) or pa.types.is_integer(f.type)
    ]


def _as_text_where_kinds_differ(tables: list[pa.Table]) -> list[pa.Table]:
    kinds: dict[str, set[str | None]] = {}
    for t in tables:
        for field in t.schema:
            kinds.setdefault(field.name, set()).add(kind_of_arrow(field.type))
    mixed = {name for name, seen in kinds.items() if len(seen) > 1}
    out = []
    for table in tables:
        fixed = table
        for name in mixed & set(table.column_names):
            i = fixed.schema.get_field_index(name)
            fixed = fixed.set_column(i, pa.field(name, pa.string()), pc.cast(fixed.column(i), pa.string()))
        out.append(fixed)
    return out


class ResultsStore:
    """A results dataset rooted at a local path or a pyarrow filesystem URI."""

    def __init__(self, root: str = DEFAULT_ROOT) -> None:
        self.root = refuse_credentials(root)
        if "://" in root:
            try:
                fs, path = pafs.FileSystem.from_uri(root)
            except (pa.ArrowException, ValueError, OSError) as exc:
                raise ResultsError(f"results root {root!r} is not a usable filesystem URI: {exc}") from exc
            self._fs: pafs.FileSystem = fs
            self._base = path.rstrip("/") or "/"
        else:
            self._fs = pafs.LocalFileSystem()
            self._base = os.path.abspath(root)
        self.is_local = isinstance(self._fs, pafs.LocalFileSystem)
        self._unsynced = run_logs.Unsynced()  # logs written with durable=False, not yet synced
        self._scheme = "" if self.is_local else urlsplit(root).scheme

    def __repr__(self) -> str:
        return f"ResultsStore({self.root!r})"

    # -- paths -----------------------------------------------------------------------------------------------

    @property
    def filesystem(self) -> pafs.FileSystem:
        return self._fs

    @property
    def base_path(self) -> str:
        """The root as a path inside :attr:`filesystem` (an absolute directory for local stores)."""
        return self._base

    def runs_dir(self, job: str | None = None) -> str:
        runs = f"{self._base}/runs"
        return runs if job is None else f"{runs}/job={check_job_name(job)}"

    def uri(self, path: str) -> str:
        """A path inside the filesystem as users should see it: plain for local disks, else ``scheme://path``."""
        return path if self.is_local else f"{self._scheme}://{path}"

    def _list(self, directory: str) -> list[pafs.FileInfo]:
        try:
            infos: list[pafs.FileInfo] = self._fs.get_file_info(pafs.FileSelector(directory, allow_not_found=True))
        except (pa.ArrowException, OSError) as exc:
            raise ResultsError(f"cannot list {self.uri(directory)}: {exc}") from exc
        return infos

    def _part_infos(self, job: str) -> list[pafs.FileInfo]:
        infos = [
            i for i in self._list(self.runs_dir(job)) if i.type == pafs.FileType.File and _is_part_file(i.base_name)
        ]
        return sorted(infos, key=lambda i: i.path)

    def part_files(self, job: str | None = None) -> list[str]:
        """Paths of the complete part files of one job (or all jobs), oldest first; temp files are skipped."""
        jobs = [job] if job is not None else self.jobs()
        return [i.path for name in jobs for i in self._part_infos(name)]

    def jobs(self) -> list[str]:
        """Names of the jobs that have at least one part file, sorted."""
        names = []
        for info in self._list(self.runs_dir()):
            if info.type != pafs.FileType.Directory or not info.base_name.startswith("job="):
                continue
            if any(i.type == pafs.FileType.File and _is_part_file(i.base_name) for i in self._list(info.path)):
                names.append(info.base_name.removeprefix("job="))
        return sorted(names)

    # -- writing ---------------------------------------------------------------------------------------------

    def write_atomic(self, directory: str, name: str, write: Any, *, replace: bool = True) -> str:
        """Write ``.<name>.tmp`` via ``write(stream)``, then rename it to ``name`` (object stores: serialize, then
        upload as ``name``); return its path. With
        ``replace=False`` an existing ``name`` is kept and :class:`FileExistsError` raised (local stores)."""
        final = f"{directory}/{name}"
        tmp = f"{directory}/.{name.removesuffix(PART_SUFFIX)}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            self._fs.create_dir(directory, recursive=True)
            if self.is_local:
                # fsync before rename: otherwise a power cut can persist the rename but not the data.
                with open(tmp, "wb") as fh:
                    write(fh)
                    fh.flush()
                    os.fsync(fh.fileno())
                if replace:
                    os.replace(tmp, final)
                else:
                    try:
                        os.link(tmp, final)  # fails if ``final`` exists: never overwrites
                    finally:
                        os.unlink(tmp)
                dir_fd = os.open(directory, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
            else:
                if not replace and self._fs.get_file_info(final).type != pafs.FileType.NotFound:
                    raise FileExistsError(final)
                # Object stores have no rename (S3's "move" is a copy plus a delete: twice the traffic, and a crash
                # between the two leaves a stray object). An object becomes visible only once its upload completes,
                # so the file is serialized in memory first and then uploaded under its final name: readers see
                # it whole or not at all, and a failed serialization uploads nothing.
                buffer = pa.BufferOutputStream()
                write(buffer)
                data = buffer.getvalue()
                with self._fs.open_output_stream(final) as stream:
                    stream.write(data)
        except FileExistsError:
            raise
        except (pa.ArrowException, OSError) as exc:
            if self.is_local:
                with contextlib.suppress(pa.ArrowException, OSError):
                    self._fs.delete_file(tmp)
            raise ResultsError(f"cannot write {self.uri(final)}: {exc}") from exc
        return final

    def write_table(self, job: str, table: pa.Table) -> str:
        """Write ``table`` (file columns, no ``job``) as one new part file of ``job``; return its path."""
        dictionary = _dictionary_columns(table.schema)
        return self.write_atomic(
            self.runs_dir(job),
            _part_name(),
            lambda sink: pq.write_table(table, sink, compression="zstd", use_dictionary=dictionary),
        )

    def writer(self, job: str, flush_rows: int = 500, flush_seconds: float = 5.0) -> ResultsWriter:
        """A buffered, deduplicating, thread-safe writer of ``job``'s rows (see
        :class:`~farm.results.writer.ResultsWriter`)."""
        from farm.results.writer import ResultsWriter  # the writer module builds on this one

        return ResultsWriter(self, job, flush_rows=flush_rows, flush_seconds=flush_seconds)

    def job_records_dir(self, job: str | None = None) -> str:
        records = f"{self._base}/jobs"
        return records if job is None else f"{records}/{check_job_name(job)}"

    def write_job_record(self, job: str, job_id: str, record: Mapping[str, Any]) -> str:
        """Store one JSON record about a whole submission of ``job`` (today: its cancellation) as
        ``<root>/jobs/<job>/<job_id>.json``; return its path."""
        if not run_logs.RUN_ID.match(job_id):
            raise ResultsError(f"cannot name a job record after job_id={job_id!r}")
        data = json.dumps(dict(record), sort_keys=True).encode()
        return self.uri(self.write_atomic(self.job_records_dir(job), f"{job_id}.json", lambda sink: sink.write(data)))

    def job_records(self, job: str | None = None) -> list[dict[str, Any]]:
        """The job records of one job (or every job), oldest submission first."""
        out: list[dict[str, Any]] = []
        dirs = (
            [self.job_records_dir(job)]
            if job is not None
            else [i.path for i in self._list(self.job_records_dir()) if i.type == pafs.FileType.Directory]
        )
        for directory in dirs:
            for info in self._list(directory):
                if info.type != pafs.FileType.File or not info.base_name.endswith(".json"):
                    continue
                try:
                    with self._fs.open_input_stream(info.path) as fh:
                        out.append(json.loads(fh.read()))
                except (pa.ArrowException, OSError, ValueError) as exc:
                    raise ResultsError(f"cannot read {self.uri(info.path)}: {exc}") from exc
        return sorted(out, key=lambda r: (r.get("submitted_at") or 0, r.get("job_id", "")))

    def job_lock(self, job: str, role: str = "writer") -> FileLock:
        """Take ``<root>/locks/<job>.<role>.lock`` (see :mod:`farm.locks`) or raise :class:`ResultsError` naming
        the process that holds it. ``writer``: held by the job's one :class:`ResultsWriter`; ``run``: held by a
        ``farm run`` of the job for its whole life, so a second one is refused before it starts anything. Local
        stores only: elsewhere the returned lock is not held (the controller keeps one writer per job)."""
        name = check_job_name(job)
        lock = FileLock(f"{self._base}/locks/{name}.{role}.lock", f"{role} of job {name}")
        try:
            held = not self.is_local or lock.try_acquire()
        except OSError as exc:
            raise ResultsError(f"cannot lock job {name!r} in {self.root}: {exc}") from exc
        if not held:
            raise ResultsError(
                f"job {name!r} is already being run or written into {self.root} (lock held by "
                f"{lock.current_holder() or 'another process'}); wait for it to end, or use another results folder"
            )
        return lock

    def write_log(self, job: str, run_id: str, attempt: int, text: str, *, durable: bool = True) -> str:
        """Store a run's raw output; return the path (local) or URI to put in the row's ``log_path``. With
        ``durable=False`` a local log is synced only by :meth:`sync_logs` (see :mod:`farm.results.run_logs`)."""
        return run_logs.write_log(self, job, run_id, attempt, text, unsynced=None if durable else self._unsynced)

    def sync_logs(self) -> None:
        """Make every log written with ``durable=False`` durable (one ``syncfs``); writers call it before a flush."""
        self._unsynced.sync(self._base)

    def write_files(self, job: str, run_id: str, attempt: int, files: Sequence[tuple[str, bytes]]) -> str | None:
        """Store the files collected from one run (relative paths → bytes); return their folder, None if none."""
        return run_logs.write_files(self, job, run_id, attempt, files)

    # -- reading ---------------------------------------------------------------------------------------------

    def _read(self, path: str, columns: list[str] | None = None) -> pa.Table:
        try:
            table: pa.Table = pq.read_table(path, columns=columns, filesystem=self._fs)
        except (pa.ArrowException, OSError) as exc:
            raise self._read_error(path, exc) from exc
        return with_slot(table)  # a file from before the ``slot`` column reads as today's rows

    def _read_error(self, path: str, exc: BaseException) -> ResultsError:
        """:class:`_PartVanished` if ``path`` is gone (S3 says so in several ways: a missing key on open, or
        RESOURCE_NOT_FOUND on a GET after the HEAD), else a plain :class:`ResultsError`."""
        try:
            gone = self._fs.get_file_info(path).type == pafs.FileType.NotFound
        except (pa.ArrowException, OSError):
            gone = False
        if gone:
            return _PartVanished(f"cannot read {self.uri(path)}: it is gone (a compaction replaced it)")
        return ResultsError(f"cannot read {self.uri(path)}: {exc}")

    def _each_part(self, job: str, read: Callable[[str], _T]) -> list[_T]:
        """``read`` of every part file of ``job``, oldest first. A file that vanishes between the listing and its
        reading was replaced by a compaction (which writes the merged file before deleting): list again."""
        for attempt in range(_READ_ATTEMPTS - 1):
            try:
                return [read(path) for path in self.part_files(job)]
            except _PartVanished:
                log.debug("a part file of job %s vanished while reading (attempt %d): listing again", job, attempt + 1)
        return [read(path) for path in self.part_files(job)]

    def _concat(self, job: str, tables: list[pa.Table]) -> pa.Table | None:
        """Union by name of tables of one job (ints promoted to float where files differ); ``None`` if none."""
        if not tables:
            return None
        try:
            return pa.concat_tables(tables, promote_options="permissive")
        except pa.ArrowException as exc:
            raise ResultsError(f"part files of job {job!r} disagree on a column's type: {exc}") from exc

    def _read_job(self, job: str, columns: list[str] | None = None) -> pa.Table | None:
        """All part files of ``job`` as one table (``columns`` only, if given); ``None`` if it has none."""
        return self._concat(job, self._each_part(job, lambda path: self._read(path, columns)))

    def _file_schema(self, path: str) -> pa.Schema:
        try:
            schema: pa.Schema = pq.read_schema(path, filesystem=self._fs)
        except (pa.ArrowException, OSError) as exc:
            raise self._read_error(path, exc) from exc
        return schema

    def _read_with_build(self, path: str) -> pa.Table:
        """``run_id``, ``status``, ``warmup`` and ``build`` (null where the file has none) of one part file."""
        has_build = "build" in self._file_schema(path).names
        t = self._read(path, ["run_id", "status", "warmup", *(["build"] if has_build else [])])
        return t if has_build else t.append_column("build", pa.nulls(t.num_rows, pa.string()))

    def schema(self, job: str) -> pa.Schema | None:
        """The union of the schemas of ``job``'s part files (no ``job`` column); ``None`` if it has none."""
        schemas = self._each_part(job, self._file_schema)
        if not schemas:
            return None
        try:
            return pa.unify_schemas(schemas, promote_options="permissive")
        except pa.ArrowException as exc:
            raise ResultsError(f"part files of job {job!r} disagree on a column's type: {exc}") from exc

    def table(self, job: str | None = None) -> pa.Table:
        """All rows of one job (or every job), ``job`` first; an empty table of required columns if none."""
        parts = []
        for name in [job] if job is not None else self.jobs():
            t = self._read_job(name)
            if t is not None:
                parts.append(t.add_column(0, pa.field("job", pa.string()), [pa.array([name] * t.num_rows)]))
        if not parts:
            return empty_table()
        try:
            return pa.concat_tables(parts, promote_options="permissive")
        except pa.ArrowException:
            # Each job keeps its columns' kinds, but two jobs may use one name differently (p_size 7 vs "7b"):
            # show such a column as text, as DuckDB's union_by_name does.
            return pa.concat_tables(_as_text_where_kinds_differ(parts), promote_options="permissive")

    def run_keys(self, job: str) -> set[tuple[str, int]]:
        """The ``(run_id, attempt)`` pairs already stored for ``job``."""
        t = self._read_job(job, ["run_id", "attempt"])
        if t is None:
            return set()
        return set(zip(t.column("run_id").to_pylist(), t.column("attempt").to_pylist(), strict=True))

    def done_run_ids(self, job: str, build: str | None = None) -> set[str]:
        """Run ids of ``job`` with an ``ok`` outcome that is not a warm-up: a resubmission skips these. With
        ``build`` (the job's ``build:`` label) only the runs of that build count: a new build runs everything."""
        if build is None:
            t = self._read_job(job, ["run_id", "status", "warmup"])
        else:  # files written before builds were labelled have no ``build`` column: none of their runs count
            t = self._concat(job, self._each_part(job, self._read_with_build))
        if t is None:
            return set()
        done = pc.and_(pc.equal(t.column("status"), "ok"), pc.invert(t.column("warmup")))
        if build is not None:
            done = pc.and_(done, pc.fill_null(pc.equal(t.column("build"), build), False))
        return set(t.column("run_id").filter(done).to_pylist())

    def metric_values(
        self, job: str, metric: str, run_ids: Collection[str], build: str | None = None
    ) -> dict[str, float]:
        """The ``metric`` of each ``ok`` (not warm-up) run of ``run_ids`` — its highest attempt's, of ``build``
        if given: what an adaptive repeat's resubmission needs of the repeats done before."""
        best: dict[str, tuple[int, float]] = {}
        wanted = set(run_ids)

        def read(path: str) -> None:
            names = self._file_schema(path).names
            if metric not in names or (build is not None and "build" not in names):
                return
            cols = ["run_id", "status", "warmup", "attempt", metric, *(["build"] if build is not None else [])]
            for row in self._read(path, cols).to_pylist():
                value, rid = row[metric], row["run_id"]
                if rid not in wanted or row["status"] != "ok" or row["warmup"] or value is None:
                    continue
                if (build is None or row.get("build") == build) and row["attempt"] >= best.get(rid, (0, 0.0))[0]:
                    best[rid] = (row["attempt"], float(value))

        self._each_part(job, read)
        return {rid: value for rid, (_, value) in best.items()}

    def attempts(self, job: str) -> dict[str, int]:
        """The highest attempt number stored per run id of ``job``."""
        t = self._read_job(job, ["run_id", "attempt"])
        if t is None:
            return {}
        agg = t.group_by("run_id").aggregate([("attempt", "max")])
        return dict(zip(agg.column("run_id").to_pylist(), agg.column("attempt_max").to_pylist(), strict=True))

    # -- maintenance -----------------------------------------------------------------------------------------

    def compact(self, job: str, small_file_bytes: int = SMALL_FILE_BYTES) -> CompactionResult:
        """Merge ``job``'s small part files into one, keeping each ``(run_id, attempt)`` once.

        Files of ``small_file_bytes`` or more are left as they are (compacting again never rewrites them), but
        a small file's row whose key is already in a big file is dropped, as is the second copy of a key among
        the small files: this is what removes the duplicates a crash between writing the merged file and
        deleting the old ones leaves behind. Safe against readers (they see the old files, or the new one and
        the old ones; never a torn file) and against a writer of the same job flushing meanwhile (its new file
        is not among those replaced).
        """
        infos = self._part_infos(job)
        small: list[str] = []
        big: list[str] = []
        for info in infos:
            (small if info.size is None or info.size < small_file_bytes else big).append(info.path)
        big_keys = self._concat(job, [self._read(f, ["run_id", "attempt"]) for f in big])
        big_rows = 0 if big_keys is None else big_keys.num_rows
        merged = self._concat(job, [self._read(f) for f in small])
        if merged is None:
            return CompactionResult(job, len(infos), len(infos), big_rows, big_rows)
        rows_before = merged.num_rows
        # Files are listed oldest first, so the smallest row index of a key is its first-written row.
        indexed = merged.append_column("__row", pa.array(range(rows_before), pa.int64()))
        first = indexed.group_by(["run_id", "attempt"]).aggregate([("__row", "min")]).column("__row_min")
        if len(first) < rows_before:
            merged = merged.take(first.take(pc.sort_indices(first)))
        if big_keys is not None:
            merged = merged.join(big_keys, keys=["run_id", "attempt"], join_type="left anti")
        if len(small) == 1 and merged.num_rows == rows_before:
            return CompactionResult(job, len(infos), len(infos), big_rows + rows_before, big_rows + rows_before)
        new = [self.write_table(job, merged)] if merged.num_rows else []
        for path in small:
            try:
                self._fs.delete_file(path)
            except (pa.ArrowException, OSError) as exc:
                raise ResultsError(
                    f"compacted {job!r} but could not delete {self.uri(path)}: {exc}; "
                    "run compact again to drop the duplicate rows"
                ) from exc
        result = CompactionResult(
            job, len(infos), len(big) + len(new), big_rows + rows_before, big_rows + merged.num_rows
        )
        log.info("compacted job %s: %s", job, result)
        return result
