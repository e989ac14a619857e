"""The tiny model set: for tests, demos and CI only, never for real predictions.

Seeded random weights in the real file formats, so that the real loaders (`dnabert_io`,
`esm_io`, `classifier_io`) read it as they read the published set: `build` writes the whole
set and keeps its copy in the cache; `dnabert`, `esm` and `classifier` write each model. This
package's __init__ imports nothing: importing `tiny.build` pulls no torch.
"""
