"""Thin entry points: CLI -> config -> builders -> engine. The library never imports this package."""
