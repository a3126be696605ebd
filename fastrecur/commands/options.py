"""What several commands share: the ``--nvtx``, ``--backend`` and ``--device`` options and the one
grammar of size lists (``8:128:8,256``)."""

from __future__ import annotations

import argparse

from ..errors import ConfigError


def add_nvtx_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nvtx", action="store_true", help="emit NVTX ranges (for Nsight Systems)")


def enable_nvtx_if_asked(args: argparse.Namespace) -> None:
    if args.nvtx:
        from ..profiling import enable_nvtx

        enable_nvtx()


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    """``--backend`` and ``--device`` (read by ``fastrecur.backends.resolve_backend`` / ``resolve_device``)."""
    parser.add_argument("--backend", choices=["auto", "reference", "triton"], default="auto")
    parser.add_argument("--device", default="auto")


def add_length_scaling_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--length-scaling",
        metavar="L0|auto",
        help="log-length attention scaling from L0 tokens on (query i's logits × max(1, ln(i+1)/ln L0); "
        "not in the authors' model); 'auto': the model's own model.length_scaling if it was trained with one, "
        "else the longest training sequence (data.train.max_length)",
    )


def length_scaling_from(text: str, cfg) -> int:
    """``--length-scaling``'s value for a run of config ``cfg``: an int, or ``auto`` = the model's own
    L0 (``model.length_scaling``) if it was trained with scaling, else ``data.train.max_length`` (the
    model is then unchanged on training-length inputs)."""
    if text == "auto":
        if cfg.model.length_scaling:
            return cfg.model.length_scaling
        length = (cfg.data.train or {}).get("max_length")
        if not length:
            raise ConfigError("--length-scaling auto needs the checkpoint's data.train.max_length; give L0 as a number")
        return int(length)
    try:
        return int(text)  # its range is checked with the rest of the config (EvalSettings.validate)
    except ValueError:
        raise ConfigError(f"--length-scaling {text!r}: expected a sequence length >= 2, 0 (off) or auto") from None


def parse_sizes(text: str, option: str) -> list[int]:
    """``"8:128:8,256"`` → ``[8, 16, …, 128, 256]``: comma-separated single sizes and
    ``START:STOP:STEP`` ranges (STOP included); duplicates dropped, order kept. ``option`` names
    the command-line option in errors."""
    sizes: list[int] = []
    try:
        for item in text.split(","):
            parts = [int(p) for p in item.split(":")]
            if len(parts) == 1:
                sizes.append(parts[0])
            elif len(parts) == 3 and parts[2] > 0:
                sizes.extend(range(parts[0], parts[1] + 1, parts[2]))
            else:
                raise ValueError
    except ValueError:
        raise ConfigError(f"{option} {text!r}: expected sizes like 8:128:8 (START:STOP:STEP) or 256,512") from None
    if not sizes or min(sizes) < 1:
        raise ConfigError(f"{option} {text!r}: sizes must be positive graph sizes")
    return list(dict.fromkeys(sizes))
