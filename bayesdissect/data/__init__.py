"""Load: the judge and property catalogue, the paper's feature rules, loaders,
simulation, and the bundled files (the simulated demo data and its true weights)."""
