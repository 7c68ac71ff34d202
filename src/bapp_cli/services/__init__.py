"""Use cases: every business rule of the booking system.

Services take a SQLAlchemy Session (and clients, a clock) and typed inputs, and return typed results.
They never import typer or rich, never read the environment or config, never commit and never print:
the command's unit of work commits or rolls back around them.
"""
