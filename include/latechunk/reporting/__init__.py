"""What people and monitors see of runs: the run report, trends across runs, metrics, charts and number display."""
