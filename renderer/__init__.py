"""Renderer: scenes whose pixels pick their level of detail, and the mipmapping baselines
(arrives with issue 4)."""
