"""Training Efficient-WAM: data preparation, latent caches, stages, resumable state.

policy/train.py is the entry point (`python -m policy.train` or under torchrun).
"""
