"""Knowing when not to answer: calibrated probabilities (calibration), a distance from every class
in the model's feature space (features, detector), both folded into the saved model's output
(model), the abstain threshold chosen on the validation split (threshold), pictures outside every
class to measure it on (outside), figures, and the step `fit` runs after training (job)."""
