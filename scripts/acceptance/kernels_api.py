"""The one place the acceptance script imports the kernel library from: its public custom ops and
the plain-PyTorch references beside the kernels (rename the package here, nowhere else)."""

from kernels import ops  # noqa: F401
from kernels.bottleneck import bottleneck_reference  # noqa: F401
from kernels.corrupt import corruption_candidates_reference, teacher_states_reference  # noqa: F401
from kernels.factor_loss import factor_loss_reference  # noqa: F401
from kernels.relpos_attention import dropout_keep_mask, relpos_attention_torch  # noqa: F401
