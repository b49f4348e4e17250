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


class MissingExtraError(GancliError):
    """An optional dependency (a pip extra such as gancli[iqa]) that a feature needs is not installed."""


def state_dict_mismatch(exc: Exception) -> str:
    """The first problem of a load_state_dict error (PyTorch lists them all, one per line), and how many followed.

    "Error(s) in loading state_dict for G:\\n\\tsize mismatch for fc.weight: ...\\n\\t..." becomes
    "size mismatch for fc.weight: ... (and 3 more)".
    """
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Error(s) in loading state_dict"):
        lines = lines[1:]
    if not lines:
        return exc.__class__.__name__
    first = lines[0] if len(lines[0]) <= 240 else lines[0][:237] + "..."
    return first + (f" (and {len(lines) - 1} more)" if len(lines) > 1 else "")
