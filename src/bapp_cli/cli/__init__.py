"""The command line: the only package that imports typer or rich.

It parses flags, applies interaction rules (`--yes`, terminal checks), opens the one unit of work of a
command, calls one service, and renders the result through the output sink. Heavy libraries
(SQLAlchemy, httpx, pydantic models) are imported inside commands so `bapp --help` stays fast.
"""
