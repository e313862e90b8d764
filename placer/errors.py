"""The exception tree of placer, and its one warning category (:class:`PlacementWarning`).

Every error a user can cause derives from :class:`PlacerError`; the CLI turns it into one red
line per problem and a non-zero exit code, never a traceback.
"""

from __future__ import annotations


class PlacerError(Exception):
    """Root of every error placer raises on purpose."""


class LocatedError(PlacerError):
    """An error with one or more located problems: ``[(location, message), ...]``.

    ``location`` is a path into the file, e.g. ``jobs[3].tp`` or ``topology.wan[1].between``;
    ``str(err)`` gives one ``location: message`` line per problem.
    """

    def __init__(self, problems: list[tuple[str, str]] | str, location: str = "") -> None:
        if isinstance(problems, str):
            problems = [(location, problems)]
        self.problems: list[tuple[str, str]] = list(problems)
        super().__init__(self._text())

    def _text(self) -> str:
        return "\n".join(f"{loc}: {msg}" if loc else msg for loc, msg in self.problems)


class InstanceError(LocatedError):
    """An instance file that is malformed or violates SPEC section 1 / 6."""


class PlacementError(LocatedError):
    """A placement file that is malformed (wrong types, unknown GPU ids, wrong lengths)."""


class SolverError(PlacerError):
    """A solver failed in a way that is a bug or a misuse (unknown backend, invalid output)."""


class UsageError(PlacerError, ValueError):
    """A library call or CLI argument that is wrong; the message names the argument
    (``time_limit: must be a finite number > 0 or None, got nan``)."""


class ArgumentTypeError(UsageError, TypeError):
    """An argument of the wrong type (``instance: expected a placer.Instance, got str``)."""


class CalibrationError(LocatedError):
    """A measurement file (nccl-tests log, step-time CSV) or a fabric overlay that cannot be
    used; each problem names its place (``run.log:42``, ``steps.csv:7``, ``fabric.yaml:
    topology.fabric.rack.latency_us``)."""


class UnknownJobError(UsageError, LookupError):
    """A job name that no running job has (``name: no running job 'x'``); the service answers
    404."""


class ConflictError(UsageError):
    """A call that conflicts with the live state: a job name already running; the service
    answers 409."""


class PlacementWarning(UserWarning):
    """A placement that can be checked and scored but looks meant for another instance (its
    ``instance`` names another one): :func:`placer.check` and :func:`placer.score` warn
    (Python's :mod:`warnings`), the CLI prints ``warning: ...`` on stderr; the exit code is
    unchanged."""
