"""The generative-score engine: feature networks, streaming statistics, FID/IS/KID/PR/PRD and their cache."""
