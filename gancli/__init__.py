"""gancli: task-specific GAN pipelines on one shared critic-normalization and trainer core."""

__version__ = "0.1.0"
