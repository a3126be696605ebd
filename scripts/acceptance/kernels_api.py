"""The one place the acceptance script imports the kernel library from: its public custom ops and
the plain-PyTorch references beside the kernels."""

from fastrecur_kernels import ops  # noqa: F401
from fastrecur_kernels.reference import (  # noqa: F401
    bottleneck_reference, corrupt_teacher_states_reference, corruption_candidates_reference, factor_loss_reference,
    gumbel_noise, relpos_attention_reference, teacher_states_reference,
)  # fmt: skip
from fastrecur_kernels.relpos_attention import dropout_keep_mask  # noqa: F401
