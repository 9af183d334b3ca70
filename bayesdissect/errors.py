"""The one exception type a user can cause."""

from __future__ import annotations


class BayesDissectError(ValueError):
    """Bad input (file, field, value, argument): the message is one line saying what,
    where, and what was expected. The CLI prints it and exits with code 2."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class DataWarning(UserWarning):
    """The data loaded, but part of it could not be seen as the loader expected (an absent
    field, an unknown key, an unparseable rating, a property that is 0 on every pair): the
    message is one line naming the property, the field and the count. The CLI prints each
    as one ``warning:`` line."""
