import os

# Weights come from registry packages only: any attempt to reach a model hub must fail.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
