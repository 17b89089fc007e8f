"""The project's own error for input a person can fix."""


class InputError(ValueError):
    """A bad argument, setting, file or name: the CLI shows it as one line and exits 2. Any other
    exception is a bug and shows as one."""
