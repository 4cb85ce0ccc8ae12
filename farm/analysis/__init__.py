"""Analysis of stored results: per-job reports and plots, bound and split analyses, CoDL export, job comparison.

Everything reads the Parquet dataset through DuckDB (:func:`farm.analysis.jobdata.load_job_data`); nothing here runs
a device. Modules: ``stats`` (median, p90, CV, Welch's t-test), ``jobdata`` (a job's rows and what its
columns are), ``report`` + ``plots`` (``farm report``), ``bound`` (``farm analyze bound``), ``split``
(``farm analyze split``), ``codl_export`` (``farm export codl-dataset``), ``compare`` (``farm compare``).
"""

from __future__ import annotations

from farm.analysis.bound import BoundAnalysis, analyze_bound
from farm.analysis.codl_export import ExportResult, export_codl_dataset
from farm.analysis.compare import Comparison, compare_jobs
from farm.analysis.jobdata import JobData, load_job_data
from farm.analysis.report import Report, ReportFiles, build_report, write_report
from farm.analysis.split import SplitAnalysis, analyze_split

__all__ = [
    "BoundAnalysis",
    "Comparison",
    "ExportResult",
    "JobData",
    "Report",
    "ReportFiles",
    "SplitAnalysis",
    "analyze_bound",
    "analyze_split",
    "build_report",
    "compare_jobs",
    "export_codl_dataset",
    "load_job_data",
    "write_report",
]
