"""Canaries: tiny models of the harness's own architectures trained here, on the needle task's distribution, so
offline accuracy is high exactly when the needle reaches the model (issue 13).

`python -m harness.canary train --out DIR` runs the recipe (`recipe.Recipe`); `make canary` writes the shipped
checkpoint. The checkpoint is a plain `save_pretrained` directory plus `manifest.json`.
"""

from harness.canary.recipe import RECIPE_VERSION, Recipe

__all__ = ["RECIPE_VERSION", "Recipe"]
