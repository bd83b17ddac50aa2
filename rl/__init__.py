"""nmlab RL: TD3, RNM-TD3 (row-wise N:M), RLx2 and gradual pruning + QAT on MuJoCo (torch)."""
