"""Errors a user can cause. The CLI prints them as one line each and exits 2, never a traceback."""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user: a config, a file, a URL, an option. Exit status 2.

    ``problems`` holds one line per problem, each already naming where it is
    (``file: /json/path: what is wrong``).
    """

    exit_status = 2

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems: tuple[str, ...] = problems
