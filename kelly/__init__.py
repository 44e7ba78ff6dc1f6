"""The `kelly` command: one entry point over the preprocess, train and export stages."""
