"""The mirror chain: hedged failover between copies of one index, with memory.

``attempt`` (one mirror, one resource, verified), ``failover`` (the race), ``memory`` (what a
run learned: files, serials), ``health`` (failures and back-off across processes),
``probe`` (the one mirror probe), ``ranking`` (``auto``), ``requestlog`` (``PIP_91N_LOG``), ``workers``
(daemon threads) and ``transport`` (the chain as an httpx transport).
"""
