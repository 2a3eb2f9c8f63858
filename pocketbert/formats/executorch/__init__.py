"""ExecuTorch: the deployment wrapper through ``torch.export`` and the XNNPACK partitioner to a ``.pte``, int8 as
XNNPACK runs it, run by ``executorch.runtime`` (see :mod:`pocketbert.formats.executorch.format`)."""

from pocketbert.formats.executorch.format import FORMAT

__all__ = ["FORMAT"]
