"""``btf-generate``: render a synthetic material to an HDF5 BTF file (hydra config
conf/generate.yaml; e.g. ``btf-generate material=bumps resolution=64 directions=small
out=bumps.h5``)."""

from __future__ import annotations

from omegaconf import DictConfig

from btf_data.btf_file import BTFFile
from btf_data.cli.info import describe, write_preview
from btf_data.generate import GenerateConfig, generate
from plumbing.hydra_app import hydra_command
from plumbing.structured_config import to_dataclass
from plumbing.user_errors import user_errors


@hydra_command("generate", "btf-generate")
def main(cfg: DictConfig) -> None:
    with user_errors("btf-generate"):
        gen = to_dataclass(GenerateConfig, cfg)
        path, seconds = generate(gen)
        with BTFFile(path) as btf:
            print(describe(btf))
            if gen.preview:
                print(f"preview     {write_preview(btf, gen.preview, exposure=gen.preview_exposure)}")
        print(f"generated in {seconds:.1f} s")


if __name__ == "__main__":
    main()
