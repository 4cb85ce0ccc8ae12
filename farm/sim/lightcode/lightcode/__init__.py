"""Stand-in for the LightCode simulator package (synthetic; see README.md beside this folder)."""

SYNTHETIC = True
