"""One exception tree for everything embrecall refuses.

Every error is an :class:`EmbrecallError`; the subclasses also inherit the matching built-in
(``ValueError``, ``KeyError``, ``ImportError``) so callers that already catch those keep working.
Messages say what was expected and what came.
"""

from __future__ import annotations


class EmbrecallError(Exception):
    """Base class of every error embrecall raises on purpose."""


class InputFormatError(EmbrecallError, ValueError):
    """A file or value is not in the expected format (says which file and line when it can)."""


class DuplicateIdError(InputFormatError):
    """The same id appears twice where ids must be unique."""


class InvalidVectorError(EmbrecallError, ValueError):
    """A vector holds NaN or infinity, or is not a 1-D/2-D array of numbers."""


class DimensionMismatchError(EmbrecallError, ValueError):
    """Vectors of one dimension were given where another was expected."""


class UnknownIdError(EmbrecallError, KeyError):
    """An id that the index does not hold. ``.ids`` lists the unknown ids."""

    def __init__(self, message: str, ids: list | tuple = ()) -> None:
        super().__init__(message)
        self.message = message
        self.ids = list(ids)

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return self.message


class ArtifactError(EmbrecallError):
    """An artifact directory is missing, corrupt, altered or of an unsupported format version."""


class MissingExtraError(EmbrecallError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


def require_extra(module: str, extra: str):
    """Import ``module``, or raise :class:`MissingExtraError` naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{module} is not installed; install it with: pip install 'embrecall[{extra}]'"
        ) from exc


class InvalidArgumentError(EmbrecallError, ValueError):
    """An argument is out of range or of the wrong kind (k <= 0, an unknown metric, a bad spec)."""


class InvalidArgumentTypeError(InvalidArgumentError, TypeError):
    """An argument of the wrong type (a DataFrame or a sequence of ids expected, other given)."""


class NotFoundError(EmbrecallError, KeyError):
    """A lookup by name or key found nothing (an unknown report row; ids: UnknownIdError)."""
