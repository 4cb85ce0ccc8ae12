"""Bench mode: put a device in a known state before a job's first run on it, record it, restore it afterwards.

:mod:`actors.bench.session` holds the device-wide life cycle (apply once per job, restore when the last job
using it ends, recover what a crashed actor left); :mod:`actors.bench.phone`, :mod:`actors.bench.host` and
:mod:`actors.bench.box` know what each kind can change; :mod:`actors.bench.sysfs` is the cpufreq code phones and
hosts share. The user-facing description is ``docs/measurement.md`` (``## Bench mode``).
"""
