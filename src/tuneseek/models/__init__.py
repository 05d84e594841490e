"""Network architectures, one small file each (PyTorch). Importing a submodule imports torch."""
