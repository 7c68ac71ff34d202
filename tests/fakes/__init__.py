"""Test doubles that run real I/O: local HTTP servers standing in for remote services."""
