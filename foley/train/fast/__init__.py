"""The fast training path: the reference models' functions, computed with fewer operations.

Each module here computes exactly what a reference model computes (``foley.models.pixelsnail``,
``foley.models.autoencoder``) from that model's own parameters, so checkpoints, optimiser states
and state dicts are the reference's; only the arithmetic differs (float rounding), and the tests
prove the losses and every parameter's gradient equal to the reference's.
"""
