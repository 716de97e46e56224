"""Test-session settings: one intra-op thread (small tensors; avoids oversubscription on a shared 2-core machine)."""

import torch

torch.set_num_threads(1)
