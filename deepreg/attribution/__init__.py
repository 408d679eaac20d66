"""The attribution stage: what a trained DeepREG model learned, and checks of it against knowledge.

Flat modules, one concept each (as tangermeme): `deeplift` (native DeepLIFT, rescale rule, and
gradient x input with `rule="gradient"`), `regulators` (regulator importance), `sequence` (promoter
attribution), `motifs` (filter PWMs, TomTom, MEME files, logos), `modisco` (TF-MoDISco),
`knockouts` (in-silico knock-outs taking any scoring `func`), `stats`, `report` (HTML) and
`stage` (the tracked `deepreg attribute` run). The stage's report sections are private modules
`_section_*` (one function each, sharing `_section_context.Context`). Nothing is imported here:
modules load on use, and `_deeplift_reference` must be importable in a TF1 process.
"""
