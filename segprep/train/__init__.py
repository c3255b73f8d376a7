"""Training: model, data, losses and the loop."""
