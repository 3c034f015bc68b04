"""swapcam models: the torch-free I/O contract (``models.contract``) and the torch autoencoder."""
