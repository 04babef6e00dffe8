"""pacd_torch: the PyTorch twin of pacd's actor engine.

- mlp.MLPActor: the same MLP actor as policy/arch/arch_mlp.c (normalisation,
  activations, heads, rescaling to the action bounds).
- safetensors: a small reader/writer of the safetensors container.
- export: state_dict + spec -> pacd checkpoint (docs/checkpoint.md), and back.
- make_example: trains a small behaviour-cloned example checkpoint.
- pac.PACActor: the Perceiver Actor-Critic twin of policy/arch/arch_pac_*.c;
  make_pac makes random-weight checkpoints of named sizes.
- dataset: the HDF5 data set of episode logs (robomimic layout, docs/loop.md):
  reference writer, reader, transition loader.
- train: offline PAC / BC / filtered BC / BC+Q training -> checkpoint.
- stats: Wilson score interval of success rates.

Use Debian's interpreter (/usr/bin/python3) with python3-torch and numpy.
"""

FORMAT = "pacd-checkpoint"
FORMAT_VERSION = 1
