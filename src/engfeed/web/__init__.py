"""The Engineering Feed web app (Starlette + Jinja2): page, JSON API, output feeds."""

from __future__ import annotations

from engfeed.web.app import create_app

__all__ = ["create_app"]
