"""Exit codes and the errors behind them, one per kind of failure, so a script or systemd can
tell them apart. Every message names the file, key, port or device it is about.

| code | meaning |
|---:|---|
| 0 | done (end of input, --max-frames, or a clean stop by SIGTERM/SIGINT) |
| 1 | an unexpected error (a bug: the traceback is printed) |
| 2 | bad input: a configuration value, a command-line option, an unreadable input file, a database of another schema |
| 3 | the source is lost or cannot be opened (camera gone after its reconnect attempts) |
| 4 | records could not be written (disk full, below the free-space floor, I/O error): the run kept going, some records were lost |
| 130 | interrupted (Ctrl-C outside a pipeline run) |
"""  # noqa: E501 (a Markdown table: its rows cannot be wrapped)

from __future__ import annotations

from contextlib import contextmanager

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_SOURCE = 3
EXIT_WRITE = 4
EXIT_INTERRUPTED = 130
EXIT_MEANING = {EXIT_OK: "done", EXIT_INTERNAL: "unexpected error", EXIT_BAD_INPUT: "bad input",
                EXIT_SOURCE: "source lost", EXIT_WRITE: "records not written", EXIT_INTERRUPTED: "interrupted"}


class EmoedgeError(Exception):
    """The base of the project's own errors: each carries its exit code (2-4) and a message naming
    the file, key, port or device. Any other exception that ends a command is a bug (exit 1)."""
    exit_code = EXIT_BAD_INPUT


class BadInputError(EmoedgeError, ValueError):
    """Input the run cannot use (a file, a value, a database of another schema)."""
    exit_code = EXIT_BAD_INPUT


class ModelError(EmoedgeError, ValueError):
    """A model file that is missing, corrupt or not what it claims to be (bad input)."""
    exit_code = EXIT_BAD_INPUT


class WriteError(EmoedgeError, OSError):
    """Records could not be written; the message names the file."""
    exit_code = EXIT_WRITE


def is_own_error(exc: BaseException) -> bool:
    """Whether ``exc`` is one of the project's own errors (exit 2-4, a message without traceback)."""
    return isinstance(exc, EmoedgeError)


def exit_code_of(exc: BaseException) -> int:
    """The exit code for an error that ends a command: an own error's code, 130 for Ctrl-C, else 1
    (an unexpected error: a bug or a failure of a library, which systemd restarts)."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return exc.exit_code if is_own_error(exc) else EXIT_INTERNAL


@contextmanager
def as_bad_input(*types: type[BaseException]):
    """``with as_bad_input(): read_the_users_file()``: a ValueError or OSError (or ``types``) of
    reading the user's input becomes a BadInputError (exit 2). At a command's boundary, around
    reading input only: around its work it would report a bug as bad input."""
    catch = types or (ValueError, OSError)
    try:
        yield
    except EmoedgeError:
        raise
    except catch as exc:
        raise BadInputError(str(exc)) from exc


def brief(value: object, limit: int = 120) -> str:
    """``repr(value)`` for an error message, cut to ``limit`` characters with the full length said: a
    message never carries a whole hostile value (a megabyte string, a huge list)."""
    try:
        text = repr(value)
    except Exception:  # a value whose repr fails is still worth naming
        return f"<{type(value).__name__}>"
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"
