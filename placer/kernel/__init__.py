"""numpy side of placer: the topology index, compiled placements and the cost kernel.

Never imports ortools or pulp.
"""
