"""The user-facing error type: a mistake in what the user gave lawsearch (an argument, a file, a
config), as opposed to a bug in lawsearch.

The CLI prints a `UserError` as one line and exits with status 2; any other exception keeps its
traceback. It subclasses ValueError, so `except ValueError` still catches it.
"""


class UserError(ValueError):
  """Bad input, with a message that says what is wrong and how to fix it."""
