"""Model-SAT: capability encoder ψ + connector W + causal LM φ, trained to compare models, plus the profile
prior (config.py: presets; model.py: the network; train.py: the loop; router.py: the registered router)."""

from modelsat.routers.modelsat.router import ModelSATRouter

__all__ = ["ModelSATRouter"]
