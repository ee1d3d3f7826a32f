"""Datasets, synthesis, features and augmentation: what the models read."""
