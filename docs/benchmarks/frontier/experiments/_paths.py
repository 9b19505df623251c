"""Where the issue-20 experiments read and write (see README.md here)."""
import os

SHARED = os.environ.get("EMOEDGE_SHARED", "../shared")
OUT = os.environ.get("OUT", "runs/onepass-exp")
os.makedirs(OUT, exist_ok=True)
CONFIGS = "emoedge/train/configs"
