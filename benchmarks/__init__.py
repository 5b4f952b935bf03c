"""tapegrad's benchmarks: asv's suite (``bench_*.py``) and the side-by-side comparison scripts.

PyTorch runs on one thread in all of them (``torch.set_num_threads(1)``), and so does numpy's
BLAS, which tapegrad's eager matrix products call: set here, before numpy is first imported, as
``OPENBLAS_NUM_THREADS=1`` unless the environment says otherwise. (Unset, numpy's OpenBLAS took
both cores of a 2-core machine for a 128x512 product and its threads spun between calls, against
PyTorch's one; the kernels' own BLAS, scipy's, runs one thread whatever this says:
``tapegrad._kernels.config.limit_kernel_blas_threads``.) Likewise, every kernel compiles before
it runs (``TAPEGRAD_BACKGROUND_COMPILE=0``), never running as Python while a background process
compiles it (``tapegrad/_kernels/tiers.py``): a timed loop must time compiled code, whenever a
compile ends. The cold-start figures set it themselves.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("TAPEGRAD_BACKGROUND_COMPILE", "0")
