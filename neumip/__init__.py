"""NeuMIP: latent mip pyramid, neural offset and decoder (arrives with issue 3)."""
