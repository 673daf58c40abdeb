"""Configuration: typed schemas registered with Hydra, composition outside a Hydra app, value checks before
torch is imported, plain YAML from files the template does not trust, and building objects from config groups."""
