"""Builtin judge networks trained on builtin data (classifier, segmenter, attribute classifier) and their scores."""
