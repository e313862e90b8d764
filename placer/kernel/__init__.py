"""numpy side of placer: the topology index, compiled placements and the cost kernel.

Never imports ortools or pulp.
"""

# importing the kernel registers how an instance's topology index is built (the model never
# imports the kernel: see placer.model.instance.set_index_builder)
from placer.kernel import topology as _topology  # noqa: E402, F401
