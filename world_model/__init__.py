"""World models: output distributions, networks, the RSSM and the WorldModel."""

from world_model.rssm import RSSM
from world_model.world_model import WorldModel

__all__ = ["RSSM", "WorldModel"]
