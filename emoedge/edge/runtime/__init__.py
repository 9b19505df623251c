"""The frame loop: configuration, sources, the pipeline, its budget, statistics, drift monitor."""
