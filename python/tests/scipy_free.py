"""erf without SciPy (math.erf, vectorised): the tests need only NumPy and pytest."""

import math

import numpy as np

erf = np.vectorize(math.erf, otypes=[float])
