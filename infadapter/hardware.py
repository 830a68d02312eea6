"""Names and prices of hardware that the spec and the solver share (no imports: both read it)."""

#: the accelerator type that ``budget.gpu`` counts (a solver option's ``accelerator`` "")
DEFAULT_ACCELERATOR = "gpu"

#: the price of one device of the default type, in cores: a GPU costs about what 10 cores do at cloud
#: list prices (a T4 node's GPU share ~8-10 vCPUs; larger GPUs far more: give those a type and a price)
DEFAULT_GPU_PRICE = 10.0
