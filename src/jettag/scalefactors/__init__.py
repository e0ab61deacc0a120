"""Data/MC scale factors for tagger working points: templates, fits, correctionlib output, weights."""
