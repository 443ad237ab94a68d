"""Fine-tuning the RPN: settings, data, the training loop and its background job."""
