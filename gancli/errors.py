"""User-facing errors: one clear sentence, printed without a traceback by the CLI."""


class GancliError(Exception):
    """An error caused by the user's input or environment, reported as one sentence."""


class ConfigError(GancliError, ValueError):
    """A configuration value, name or option is invalid."""


class DataError(GancliError):
    """A dataset, image or file is missing, unreadable or laid out wrongly."""


class CheckpointError(GancliError):
    """A run folder or checkpoint is missing, corrupt or from another recipe."""


class MissingWeightsError(GancliError):
    """Pretrained weights a feature needs are not available on this machine."""
