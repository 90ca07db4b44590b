"""``btf-import-ubo path=material.btf out=material.h5``: convert a UBO2014 FMF1 file to the
HDF5 BTF format in bounded memory (hydra config conf/import_ubo.yaml)."""

from __future__ import annotations

from omegaconf import DictConfig

from btf_data.btf_file import BTFFile
from btf_data.cli.info import describe
from btf_data.import_ubo import ImportConfig, import_ubo
from plumbing.hydra_app import hydra_command
from plumbing.structured_config import to_dataclass
from plumbing.user_errors import user_errors


@hydra_command("import_ubo", "btf-import-ubo")
def main(cfg: DictConfig) -> None:
    with user_errors("btf-import-ubo"):
        out = import_ubo(to_dataclass(ImportConfig, cfg))
        with BTFFile(out) as btf:
            print(describe(btf))


if __name__ == "__main__":
    main()
