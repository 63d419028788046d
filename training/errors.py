"""Errors a user can cause and fix: the CLI prints them on one line, without a traceback."""


class TrainingError(Exception):
    """A bad input (manifest, file, flag, model name) with a message that says how to fix it."""
