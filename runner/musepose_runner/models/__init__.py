"""MusePose's networks, built from diffusers and transformers blocks.

* ``reference_unet``: diffusers' UNet2DConditionModel without its output head; it runs once
  per video on the reference image and lends its self-attention inputs to
* ``denoising_unet``: the same 2-D UNet applied to every frame, with temporal motion modules
  after each spatial layer and reference attention in every spatial transformer block,
* ``pose_guider``: a small conv net whose pose features are added after ``conv_in``.

The official checkpoint files load unchanged through ``checkpoint.py``.
"""
