"""Evaluation protocols, one module per benchmark."""
