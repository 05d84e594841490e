"""The networks (PyTorch modules, one small file each) and the checkpoint folders they are saved in.

Below the engines: nothing here imports them (their inference runs are in :mod:`tuneseek.embed`).
Importing a network or :mod:`~tuneseek.models.checkpoint` imports torch;
:mod:`~tuneseek.models.digest` and :mod:`~tuneseek.models.directory` do not.
"""
