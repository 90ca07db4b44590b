"""BTF data: HDF5 files, synthetic materials rendered to BTFs, filtered ground-truth pyramids,
UBO2014 import and training batches.

    from btf_data import BTFFile, procedural_maps, generate, GenerateConfig

Conventions, used by every module here:
- Tangent frame: z is the macro-surface normal; ``wi`` points to the light, ``wo`` to the viewer,
  both unit vectors with z > 0. ``x`` runs along +u (image columns), ``y`` along +v (image rows).
- ``uv`` has period 1; texel (i, j) of a level of resolution R has its centre at
  ((j + 0.5) / R, (i + 0.5) / R).
- Level k has resolution R / 2^k; ``lod`` is continuous, ``level`` an integer.
- BTF values are BRDF-like (radiance under unit irradiance normal to the light, divided by
  cos(theta_i)); a white Lambertian plane reads 1/pi.
"""

from btf_data.btf_file import BTFFile, BTFWriter
from btf_data.errors import BTFFormatError
from btf_data.generate import GenerateConfig, MaterialConfig, generate
from btf_data.procedural import MATERIALS, procedural_maps
from btf_data.svbrdf import SVBRDFMaps

__all__ = ["MATERIALS", "BTFFile", "BTFFormatError", "BTFWriter", "GenerateConfig", "MaterialConfig",
           "SVBRDFMaps", "generate", "procedural_maps"]
