"""What every matmul fusion family shares: the walk over matmul anchors and the bookkeeping."""

from __future__ import annotations

from torch.fx import Graph, Node

from .nodes import ADDMM, MM, is_call


class MatmulFusion:
    """A family that rewrites ``mm``/``addmm`` anchors; subclasses say how and what a near miss is."""

    name = ""
    option = ""
    anchors = (MM, ADDMM)
    """The matmul ops this family rewrites."""

    def apply(self, graph: Graph, report) -> int:
        """Rewrite every matching matmul in ``graph``; returns the number of rewrites."""
        count = 0
        for anchor in list(graph.nodes):
            if not is_call(anchor, *self.anchors):
                continue
            result = self.rewrite(anchor, report)
            if isinstance(result, str):
                if self.is_near_miss(anchor, result):
                    report.near_miss(self.name, anchor, result)
                continue
            count += 1
        return count

    def rewrite(self, anchor: Node, report) -> Node | str:
        """Replace ``anchor``'s computation by a fused op node, or say why not."""
        raise NotImplementedError

    def is_near_miss(self, anchor: Node, reason: str) -> bool:
        """Whether a refusal is worth reporting (the anchor looked like this family's spelling)."""
        return False
