"""The Train dock: fine-tuning controls, the panel and the weights actions of the Model menu."""
