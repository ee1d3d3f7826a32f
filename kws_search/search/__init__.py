"""The search: space, objective, rungs, samplers, study, storage, workers."""
