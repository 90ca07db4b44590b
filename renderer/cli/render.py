"""``neumip-render`` (hydra config conf/neumip_render.yaml): render a demo scene with a material,
or several beside the supersampled reference with error maps and PSNR / FLIP."""

from __future__ import annotations

from omegaconf import DictConfig

from plumbing.hydra_app import hydra_command
from plumbing.structured_config import to_dataclass
from plumbing.user_errors import user_errors
from renderer.command import RenderCommandConfig, run_render


@hydra_command("neumip_render", "neumip-render")
def main(cfg: DictConfig) -> None:
    with user_errors("neumip-render"):
        written = run_render(to_dataclass(RenderCommandConfig, cfg))
        for name, path in written.items():
            print(f"{name:14s}{path}")


if __name__ == "__main__":
    main()
