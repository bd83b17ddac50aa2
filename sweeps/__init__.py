"""nmlab sweeps: grids over N:M pattern x bitwidth x design point x workload x scenario."""
