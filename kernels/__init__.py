"""fastrecur's Triton kernels (installed as ``fastrecur_kernels``): a reusable library that depends
only on torch and triton, never on fastrecur.

* ``ops`` — the public entry points, one ``torch.library`` custom op per fused op (usable under
  ``torch.compile``): ``relpos_attention`` (causal flash attention with DeBERTa-style relative
  positions), ``bottleneck`` (output heads → argmax / Gumbel-max tokens → re-embedding),
  ``factor_loss`` (fused multi-factor cross-entropy with per-token correctness) and
  ``corrupt_teacher_states`` (teacher states with error-correction noise);
* ``reference`` — the plain-PyTorch math of every op (torch only): what the kernels are tested
  against and what fastrecur's ``reference`` backend runs;
* one file per op with its Triton kernels and launcher (``relpos_attention``, ``bottleneck``,
  ``factor_loss``, ``corrupt``);
* ``interpreter`` — whether kernels run compiled or in Triton's CPU interpreter, decided once.

Kernels run on CUDA GPUs, and on the CPU under ``TRITON_INTERPRET=1`` (slow; for tests). Importing
this package imports nothing: ``reference`` works without Triton.
"""
