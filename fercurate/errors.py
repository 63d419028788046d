"""User-facing errors: the CLI prints these as one line, never as a traceback."""


class FercurateError(Exception):
    """A problem the user can fix; the message names the file/field and what to do."""


class SourceError(FercurateError):
    """The input data (a folder, a csv, a file in it) is not what its layout promises."""
