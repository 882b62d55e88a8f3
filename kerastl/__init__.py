"""kerastl: transfer learning on small images with Keras 3, on TensorFlow, JAX or PyTorch."""

import os

# PyTorch on a CPU: OpenMP threads that spin while they wait made a fine-tuning step 13x slower on a
# busy 2-core machine (8.1 s against 0.6 s with passive waiting). Set before torch starts; a
# user's own setting wins. TensorFlow and JAX do not use OpenMP's thread pool.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
