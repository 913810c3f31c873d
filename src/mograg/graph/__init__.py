"""The MoGG graph: building chunk links, matching titles, walking hops from seed chunks."""
