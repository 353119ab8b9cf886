"""`keystile demo`: the whole DCR flow on one machine (control plane, built-in IdP, gateway, sample upstream)."""
