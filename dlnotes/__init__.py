"""dlnotes: the reference implementations behind the dlnotes deep-learning course.

Modules are imported on demand (``from dlnotes import data``); only the runtime
helpers are exported at the top level, so ``import dlnotes`` does not import torch.
"""

from dlnotes.runtime import env_report, get_device, seed_everything

__all__ = ["env_report", "get_device", "seed_everything", "__version__"]
__version__ = "0.1.0"
