"""Jitted kernels. Importing this package imports numba; tapegrad does so on first backward."""
