"""Efficient-WAM in PyTorch (PAPER.md): presets, the joint video-action model, the asymmetric
sampler, latent codecs, text encoders and the T-layout observation image.

Import what you need from the modules (policy.model.config, .wam, .sampler, ...); this package
file stays empty of imports so that torch-free users (observation.py) load nothing heavy.
"""
