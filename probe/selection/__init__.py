"""Selection Process: the RFC 5475 / RFC 6728 selectors, applied in order to packet batches."""

from probe.selection.process import SelectionProcess
from probe.selection.selectors import Selector, build_selector, columns_for

__all__ = ["SelectionProcess", "Selector", "build_selector", "columns_for"]
