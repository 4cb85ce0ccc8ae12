"""The farm over HTTP: a FastAPI app beside the controller (``farm api serve``) and the live farm page it serves.

- :mod:`farm.api.app` — the routes: jobs (submit, list, get, cancel, rows as JSON or Parquet, a run's log) and
  devices; the OpenAPI schema at ``/api/openapi.json``; the page at ``/``;
- :mod:`farm.api.auth` — the bearer token, read from a file or an environment variable (never a command-line
  argument), and the request body limit;
- :mod:`farm.api.intake` — a job that arrives over HTTP is untrusted: its YAML goes through the same loader as
  ``farm submit`` (same ``<file>: <field>: <reason>`` messages) and its artifacts come with the request or from
  the configured artifact root, never from an arbitrary path of the head node;
- :mod:`farm.api.rows` — one submission's result rows, a page at a time;
- :mod:`farm.api.models` — the shapes of the answers, as the OpenAPI schema publishes them;
- :mod:`farm.api.remote` — the HTTP client of ``farm submit --api``.

FastAPI and uvicorn are the optional ``api`` extra (``pip install farm[api]``); the client needs only requests.
"""
