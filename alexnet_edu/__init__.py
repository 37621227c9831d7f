"""alexnet_edu: the code behind the AlexNet teaching notebooks.

One module per idea: `shapes` (output-size arithmetic), `layers` (Local Response Normalization),
`model` (AlexNet), `device`, `settings` (smoke mode, data root).
"""

from .device import pick_device
from .layers import LocalResponseNorm
from .model import AlexNet, activations
from .settings import data_root, smoke_mode

__version__ = "0.1.0"
__all__ = ["AlexNet", "LocalResponseNorm", "activations", "pick_device", "data_root", "smoke_mode"]
