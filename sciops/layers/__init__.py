"""Building blocks of the operators: spectral convolutions, grids, multigrid, graphs, U-Net blocks."""
