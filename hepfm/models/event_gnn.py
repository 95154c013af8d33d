"""The event model: an encode-process-decode graph network over the reconstructed objects of an event.

After Ho, Roberts, Han and Wang (arXiv 2412.10665), in the graph-network framework of Battaglia et al.
(arXiv 1806.01261). One fully connected graph per event (:mod:`hepfm.data.graphs`):

* **encode** — separate MLPs map node, edge and global features to ``hidden`` dimensions;
* **process** — ``steps`` graph-network blocks, each updating every edge from (edge, sender, receiver,
  global), every node from (node, mean of incoming edges, global) and the global from (global, mean of
  nodes, mean of edges), all with residual connections and LayerNorm; weights are not shared between
  steps; aggregation is torch-geometric's ``scatter`` over the batched graphs;
* **decode** — an MLP of (global, mean of nodes) gives the event representation; a linear ``head``
  gives the task outputs: class logits (multiclass), or truth-label logits followed by kinematic
  regression targets (multilabel).

Fine-tuning replaces ``head`` only (:meth:`EventGNN.replace_head`); everything else is the backbone.
Node, edge and graph counts vary freely: the model sees only torch-geometric batches, so results
are invariant to the order of the objects and to padding.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch_geometric.utils import scatter

from hepfm.core.errors import OptionError
from hepfm.data.schema import EDGE_FEATURES, GLOBAL_FEATURES, NODE_FEATURES

__all__ = ["EventGNNConfig", "EventGNN"]


@dataclass
class EventGNNConfig:
    """Architecture of :class:`EventGNN`.

    Attributes:
        hidden: width of node, edge and global representations.
        steps: message-passing (graph-network) blocks.
        mlp_ratio: hidden width of every MLP as a multiple of ``hidden``.
        dropout: dropout inside the MLPs.
        task: ``"multiclass"`` (head = class logits) or ``"multilabel"`` (head = truth-label logits, then
            kinematic targets).
        n_outputs: size of the head (classes, or truth labels + targets).
        n_labels: how many of the outputs are truth labels (multilabel only).
    """

    n_node_features: int = len(NODE_FEATURES)
    n_edge_features: int = len(EDGE_FEATURES)
    n_global_features: int = len(GLOBAL_FEATURES)
    hidden: int = 64
    steps: int = 4
    mlp_ratio: int = 2
    dropout: float = 0.0
    task: str = "multiclass"
    n_outputs: int = 12
    n_labels: int = 0

    @classmethod
    def named(cls, name: str, **overrides) -> EventGNNConfig:
        """``default`` (hidden 64, 4 steps, as the paper: ~0.4 M parameters), ``small`` or ``tiny``."""
        sizes = {"default": {}, "small": {"hidden": 48, "steps": 3}, "tiny": {"hidden": 32, "steps": 2}}
        if name not in sizes:
            raise OptionError("config", f"unknown event-model size {name!r}; known: {', '.join(sizes)}")
        return cls(**{**sizes[name], **overrides})

    def to_dict(self) -> dict:
        return asdict(self)


def _mlp(n_in: int, n_out: int, width: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(n_in, width), nn.SiLU(), nn.Dropout(dropout), nn.Linear(width, n_out), nn.LayerNorm(n_out)
    )


class _Block(nn.Module):
    """One graph-network block: edges, then nodes, then the global vector, each with a residual.

    The edge update's first layer acts on the concatenation [edge, sender, receiver, global]; it is
    computed as the sum of four projections, the node and global ones once per node and per graph and
    then gathered onto the edges, which gives the same function at a fraction of the cost on fully
    connected graphs (an event has ~n^2 edges but n nodes).
    """

    def __init__(self, h: int, width: int, dropout: float):
        super().__init__()
        self.edge_in = nn.Linear(h, width)
        self.edge_src = nn.Linear(h, width, bias=False)
        self.edge_dst = nn.Linear(h, width, bias=False)
        self.edge_glob = nn.Linear(h, width, bias=False)
        self.edge_out = nn.Sequential(nn.SiLU(), nn.Dropout(dropout), nn.Linear(width, h), nn.LayerNorm(h))
        self.node = _mlp(3 * h, h, width, dropout)
        self.glob = _mlp(3 * h, h, width, dropout)

    def forward(self, x, edge_index, e, u, batch):
        src, dst = edge_index
        n_graphs = u.shape[0]
        node_glob = self.edge_glob(u)[batch]
        e = e + self.edge_out(self.edge_in(e) + self.edge_src(x)[src] + (self.edge_dst(x) + node_glob)[dst])
        incoming = scatter(e, dst, dim=0, dim_size=x.shape[0], reduce="mean")
        x = x + self.node(torch.cat([x, incoming, u[batch]], -1))
        nodes = scatter(x, batch, dim=0, dim_size=n_graphs, reduce="mean")
        edges = scatter(e, batch[src], dim=0, dim_size=n_graphs, reduce="mean")
        u = u + self.glob(torch.cat([u, nodes, edges], -1))
        return x, e, u


class EventGNN(nn.Module):
    """Encode-process-decode graph network; ``forward(batch)`` returns the head's outputs (B, n_outputs)."""

    def __init__(self, config: EventGNNConfig):
        super().__init__()
        self.config = c = config
        h, width = c.hidden, c.hidden * c.mlp_ratio
        self.node_encoder = _mlp(c.n_node_features, h, width, 0.0)
        self.edge_encoder = _mlp(c.n_edge_features, h, width, 0.0)
        self.global_encoder = _mlp(c.n_global_features, h, width, 0.0)
        self.blocks = nn.ModuleList(_Block(h, width, c.dropout) for _ in range(c.steps))
        self.decoder = nn.Sequential(
            nn.Linear(2 * h, width), nn.SiLU(), nn.Dropout(c.dropout), nn.Linear(width, h), nn.SiLU()
        )
        self.head = nn.Linear(h, c.n_outputs)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def embed(self, graph) -> torch.Tensor:
        """The event representation (B, hidden) the head reads, of a ``torch_geometric`` batch of event graphs
        (:attr:`hepfm.data.graphs.EventBatch.graph`)."""
        x = self.node_encoder(graph.x)  # (nodes, H)
        e = self.edge_encoder(graph.edge_attr)  # (edges, H)
        u = self.global_encoder(graph.u)  # (B, H)
        for block in self.blocks:
            x, e, u = block(x, graph.edge_index, e, u, graph.batch)
        nodes = scatter(x, graph.batch, dim=0, dim_size=u.shape[0], reduce="mean")  # (B, H)
        return self.decoder(torch.cat([u, nodes], -1))

    def forward(self, graph) -> torch.Tensor:
        """Head outputs (B, n_outputs) of a batch of event graphs."""
        return self.head(self.embed(graph))

    def replace_head(self, n_outputs: int) -> None:
        """A fresh, zero-initialised classification layer for ``n_outputs`` classes (fine-tuning)."""
        self.head = nn.Linear(self.config.hidden, n_outputs).to(self.head.weight.device)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.config.task, self.config.n_outputs, self.config.n_labels = "multiclass", n_outputs, 0

    def backbone_parameters(self) -> list[nn.Parameter]:
        head = {id(p) for p in self.head.parameters()}
        return [p for p in self.parameters() if id(p) not in head]

    def representation_layers(self) -> dict[str, nn.Module]:
        """The layers whose outputs represent an event, in forward order, by their submodule names.

        ``global_encoder`` (the encoded global features), the graph-network ``blocks.i`` and the
        ``decoder`` (the event representation the head reads): what CKA compares layer by layer
        (:func:`hepfm.analysis.cka.cka_between`).
        """
        return {
            "global_encoder": self.global_encoder,
            **{f"blocks.{i}": block for i, block in enumerate(self.blocks)},
            "decoder": self.decoder,
        }

    def pool_representation(self, name: str, output, batch=None) -> torch.Tensor:
        """One vector per event, (B, hidden) float64, from the output of the representation layer ``name``.

        A graph-network block returns (nodes, edges, global): its global vector (B, hidden) represents the
        event; the encoder and the decoder already give (B, hidden). ``batch`` is not needed.
        """
        if name.startswith("blocks."):
            output = output[2]
        return output.double()
