"""Canaries: tiny models of the harness's own architectures trained here, on the needle task's distribution, so
offline accuracy is high exactly when the needle reaches the model (issue 13).

`python -m harness.canary train --out DIR` runs the LLaVA-OV recipe (`recipe.Recipe`), `train-clip` the canary
CLIP's (`clip.ClipRecipe`); `make canary` writes both shipped checkpoints (weights/llava-ov, weights/clip). Each is
a plain `save_pretrained` directory plus `manifest.json` and the learning curve.
"""

from harness.canary.recipe import RECIPE_VERSION, Recipe

__all__ = ["RECIPE_VERSION", "Recipe"]
