from pathlib import Path

# The repository: where `make run` starts the server and the README lives.
ROOT = Path(__file__).resolve().parent.parent
