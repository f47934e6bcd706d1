"""How ASS subtitles (and burnt-in ones) look: a resource a user can restyle."""

from typing import Literal

import dagster as dg
import pysubs2

_ALIGNMENT = {"bottom": pysubs2.Alignment.BOTTOM_CENTER, "middle": pysubs2.Alignment.MIDDLE_CENTER,
              "top": pysubs2.Alignment.TOP_CENTER}


class SubtitleStyle(dg.ConfigurableResource):
    """Font, size, outline and position of the styled (ASS) subtitles, on a 1920×1080 canvas."""

    font: str = "DejaVu Sans"
    size: int = 54
    outline: float = 2.5
    shadow: float = 0.0
    bold: bool = False
    position: Literal["bottom", "middle", "top"] = "bottom"
    margin_v: int = 60

    def apply(self, subs: pysubs2.SSAFile) -> None:
        subs.info["PlayResX"], subs.info["PlayResY"] = "1920", "1080"
        subs.styles["Default"] = pysubs2.SSAStyle(
            fontname=self.font, fontsize=self.size, outline=self.outline, shadow=self.shadow,
            bold=self.bold, alignment=_ALIGNMENT[self.position], marginv=self.margin_v,
            primarycolor=pysubs2.Color(255, 255, 255), outlinecolor=pysubs2.Color(0, 0, 0),
        )

    def parameters(self) -> dict:
        return self.model_dump()
