"""The fast training path: a reference model's function, computed with fewer operations.

``prior`` computes exactly what ``foley.models.pixelsnail.PixelSNAIL`` computes from that model's
own parameters, so checkpoints, optimiser states and state dicts are the reference's; only the
arithmetic differs (float rounding), and the tests prove the losses and every parameter's
gradient equal to the reference's. The autoencoder has no fast forward: its convolutions already
run on the CPU's direct kernels near their peak, and the rewrites tried (channels last, im2col,
space-to-depth, Winograd) measured within 10 % of them (README, training speed).
"""
