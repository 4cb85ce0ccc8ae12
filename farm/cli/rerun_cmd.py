"""``farm rerun RUN_ID``: re-create one recorded run from its result row and run it again (embedded mode).

The row alone is enough: the device slot, command, env, working directory, artifacts (found by sha256), grid
point, repeat, workload, timeout and cooldown it recorded. The new outcome is the next attempt of the same run
id in the same job; the original row stays as it was. Env values recorded redacted (secrets) are taken from
this shell's environment. ``--print`` shows the run as one shell line instead of running it.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farm import rerun
from farm.cli.common import inventory_from, results_root, stdout
from farm.cli.run_cmd import embedded

if TYPE_CHECKING:
    from farm.client import FarmClient


def register(sub: Any) -> None:
    p = sub.add_parser(
        "rerun",
        help="run one recorded run again from its result row (or --print its command line)",
        description=__doc__.replace("``", "`") if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_id", metavar="RUN_ID", help="the run's run_id (see `farm results JOB`)")
    p.add_argument("--attempt", type=int, metavar="N", help="re-create this attempt (default: the latest)")
    p.add_argument("--results", metavar="DIR", help="results location (default ./farm-results or $FARM_RESULTS)")
    p.add_argument("--inventory", metavar="INV", help="inventory YAML (default: this host as one device)")
    p.add_argument("--print", action="store_true", dest="print_only", help="print the command line, do not run")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    root = results_root(args.results)
    recorded = rerun.load_rerun(root, args.run_id, args.attempt)
    console = stdout()
    if args.print_only:
        for line in [*rerun.describe(recorded), rerun.command_line(recorded)]:
            console.print(line, markup=False)
        return 0
    # Bad input (missing artifact bytes, an unset redacted secret) is refused before anything starts.
    paths = rerun.find_artifacts(recorded)
    data = rerun.job_data(recorded, paths, os.environ)
    refs = rerun.artifact_refs(recorded, paths)
    source = f"rerun of {recorded.job}:{recorded.run_id}"

    def submit(client: FarmClient) -> str:
        return client.submit_data(data, source, str(Path.cwd()), refs, rerun=True, single=rerun.single(recorded))

    status = embedded(inventory_from(args.inventory), root, submit, not args.no_progress)
    row = rerun.find_row(root, recorded.run_id)
    console.print(
        f"{recorded.job}: run {recorded.run_id} attempt {row['attempt']} on {row['slot']}: {row['status']}"
        + (f" ({row['error']})" if row.get("error") else ""),
        markup=False,
    )
    return 0 if status.state == "done" and row["status"] == "ok" and row["attempt"] > recorded.attempt else 1
