// replaced by the control plane
