"""Device actors (one Ray actor per physical device) and the transports they drive devices through."""

from __future__ import annotations
