"""The ViLEM method: config, towers, heads, the model and its losses, the negative editors and
checkpoints. Importable without the trainer, the data adapters or the CLI."""
