"""fastrecur's Triton kernels: a reusable library that depends only on torch and triton.

One file per fused op, each holding its Triton kernels, the ``torch.autograd.Function`` that
launches them, the public function, and a plain-PyTorch reference of the same math:

* ``relpos_attention`` — causal flash attention with DeBERTa-style relative positions;
* ``bottleneck`` — output heads → argmax / Gumbel-max tokens → re-embedding (inference path);
* ``factor_loss`` — fused multi-factor cross-entropy with per-token correctness;
* ``corrupt`` — teacher states and error-correction noise injection;
* ``ops`` — all of them as ``torch.library`` custom ops, for use under ``torch.compile``.

Kernels run on CUDA GPUs, and on the CPU under ``TRITON_INTERPRET=1`` (slow; for tests).
"""
