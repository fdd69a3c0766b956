"""The errors foley raises for bad input. Each message names the thing and the fix."""


class FoleyError(Exception):
    """Base of every error foley reports to users as one clear line."""


class ConfigError(FoleyError):
    """An unknown, missing or impossible configuration value."""


class AudioError(FoleyError):
    """An audio file that cannot be used (unreadable, empty, non-finite, ...)."""


class DataError(FoleyError):
    """A data folder that does not have the expected layout or content."""


class CheckpointError(FoleyError):
    """A checkpoint or weights file that is missing, corrupt or of the wrong kind."""


class RunError(FoleyError):
    """A run folder or stage that cannot proceed (missing upstream output, lock held, ...)."""


class DiskFullError(FoleyError):
    """No space left on the disk while writing an output; what was finished before stays complete."""


class Interrupted(FoleyError):
    """Training stopped on SIGINT or SIGTERM after writing a checkpoint; the run resumes from it."""

    def __init__(self, message: str, signal_number: int):
        super().__init__(message)
        self.signal_number = signal_number

    @property
    def exit_code(self) -> int:
        """The shell's code for a process ended by the signal: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signal_number
