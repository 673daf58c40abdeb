"""What a run tells the world: W&B (online or offline) and MLflow loggers, the run record (resolved config, git
state and diff, command line, host, versions), credentials redacted from all of it, and the console and progress
output."""
