"""pacd_torch: the PyTorch twin of pacd's actor engine.

- mlp.MLPActor: the same MLP actor as policy/policy_mlp.c (normalisation,
  activations, heads, rescaling to the action bounds).
- safetensors: a small reader/writer of the safetensors container.
- export: state_dict + spec -> pacd checkpoint (docs/checkpoint.md), and back.
- make_example: trains a small behaviour-cloned example checkpoint.

Use Debian's interpreter (/usr/bin/python3) with python3-torch and numpy.
"""

FORMAT = "pacd-checkpoint"
FORMAT_VERSION = 1
