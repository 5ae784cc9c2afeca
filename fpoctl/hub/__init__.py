"""The Hugging Face Hub: pull policies into the shared cache and push fine-tuned runs back
(aliases, verification, model card, training curves). Submodules import huggingface_hub and
torch; this one stays light so that `fpoctl --help` starts fast."""


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KB' (decimal units, like the Hub)."""
    if abs(n) < 1000:
        return f"{n:.0f} B"
    for unit in ("KB", "MB", "GB", "TB"):
        n /= 1000
        if abs(n) < 1000 or unit == "TB":
            break
    return f"{n:.1f} {unit}"
