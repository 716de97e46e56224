"""Datasets: synthetic homographies (scikit-image photos), HPatches, YFCC test pairs."""
