"""navseal host package: command line (this folder), protocol, gateway and bench."""

__version__ = "0.1.0"


def crc_backend() -> str:
    """Say whether crcmod runs its C extension (fast) or fell back to pure Python (slow).

    crcmod silently falls back when its extension failed to build, which costs about 50x in CRC
    throughput; `navseal --version` prints this so the fallback is never silent here.
    """
    import sys

    import crcmod  # noqa: F401  (imports crcmod.crcmod)

    using_c = getattr(sys.modules.get("crcmod.crcmod"), "_usingExtension", False)
    return "crcmod C extension" if using_c else "crcmod pure Python (slow: C extension missing)"
