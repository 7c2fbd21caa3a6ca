"""The long-running process: the intake loop, signals and the APScheduler jobs."""
