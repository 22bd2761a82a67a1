import os
from pathlib import Path

# The datasets live outside the repository (never committed): ../shared/datasets by default.
os.environ.setdefault("FEDFAIR_DATA_DIR", str(Path(__file__).resolve().parents[1].parent / "shared" / "datasets"))
