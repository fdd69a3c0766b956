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
