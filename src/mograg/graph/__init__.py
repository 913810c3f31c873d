"""The MoGG graph: chunk links, saved beside the index, walked from seed chunks."""
