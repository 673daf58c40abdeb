"""Launching and distribution: DDP settings the Trainer's shortcuts cannot express, DDP inside Hydra sweeps,
the one-job-per-GPU sweep launcher, and process-wide speed settings for the hardware the Trainer picked."""
