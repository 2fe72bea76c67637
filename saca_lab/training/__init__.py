"""Training: the LightningModule, transfer learning, and the experiment runner."""
