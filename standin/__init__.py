"""A local stand-in for Unsplash's random-photo API, for offline runs and tests."""

from standin.app import StandIn, create_app

__all__ = ["StandIn", "create_app"]
