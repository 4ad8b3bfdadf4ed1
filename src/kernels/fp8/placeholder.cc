// replaced by the FP8 reference quantizer
