"""Running the otlp2parquet binary from the Python tests."""

import os
import subprocess

# scripts/test.sh points this at the freshly built binary.
BIN = os.environ.get("OTLP2PARQUET_BIN", "otlp2parquet")


def run(*args, cwd=None):
    """Runs `otlp2parquet ARGS...` quietly; raises on failure; returns its stdout."""
    return subprocess.run([BIN, *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={**os.environ, "RUST_LOG": "warn"}).stdout


def run_unchecked(*args, cwd=None):
    """Runs `otlp2parquet ARGS...` quietly; returns the CompletedProcess, whatever its exit."""
    return subprocess.run([BIN, *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "RUST_LOG": "warn"})
