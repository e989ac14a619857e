"""The models package: the native DNABERT-S, ESM-2 loading, the VirNucPro classifier and model sets.

Heavy libraries (torch, tokenizers, fair-esm) are imported by the modules in here, never by the
package itself, so importing `virnucpro.models` stays cheap.
"""
