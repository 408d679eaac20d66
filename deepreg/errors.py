"""The one exception type that the CLI turns into a single line on stderr and exit status 2."""


class DeepRegError(Exception):
    """Bad input or an impossible request, described for the person who can fix it.

    The message names the file, line or configuration key at fault and what was expected.
    """
