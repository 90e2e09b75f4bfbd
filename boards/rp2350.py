"""Raspberry Pi Pico 2 (RP2350, Arm cores) with the RPI_PICO2 firmware."""

from . import BoardProfile

PROFILE = BoardProfile(
    name="rp2350",
    title="Raspberry Pi Pico 2 (RP2350, Arm cores), RPI_PICO2 firmware",
    mcu="RP2350, 2x Arm Cortex-M33 with FPU",
    clock_hz=150_000_000,
    ram_bytes=520 * 1024,
    free_heap_bytes=460_000,
    max_alloc_bytes=440_000,
    flash_bytes=4 * 1024 * 1024,
    fs_bytes=3 * 1024 * 1024,
    fs_block_bytes=4096,
    mpy_arch="armv7emsp",
    viper=True,
    platform="rp2",
    machine="with RP2350",
    aliases=("pico2", "pico-2", "rpi-pico2", "rpi_pico2"),
    sources={
        "mcu": "RP2350 datasheet",
        "clock_hz": "pico-sdk default for RP2350 (hardware_clocks clocks.h, cited by "
                    "embassy-rs PR #3391)",
        "ram_bytes": "RP2350 datasheet: 520 KB SRAM",
        "free_heap_bytes": "no published measurement found: 520 KB less the ~54 KB that "
                           "firmware statics and stacks take on the RP2040 (264 KB SRAM, "
                           "~210 KB free); the rp2 port gives the GC heap all remaining RAM "
                           "(PR #10968)",
        "max_alloc_bytes": "one contiguous heap, as on the RP2040",
        "flash_bytes": "Raspberry Pi Pico 2 datasheet: 4 MB QSPI flash",
        "fs_bytes": "micropython rp2 boards for the RP2350 (RPI_PICO2_W mpconfigboard.h): "
                    "MICROPY_HW_FLASH_STORAGE_BYTES = PICO_FLASH_SIZE_BYTES - 1 MiB",
        "fs_block_bytes": "LittleFS v2 on the flash's 4 KiB erase sectors (rp2 port)",
        "mpy_arch": "Cortex-M33 with single-precision FPU -> armv7emsp (tinyrt DESIGN.md)",
        "viper": "ports/rp2 mpconfigport.h: MICROPY_EMIT_THUMB (1) (Arm firmware; the RISC-V "
                 "firmware of the same chip would need rv32imc)",
    },
    estimates=frozenset({"clock_hz", "free_heap_bytes", "max_alloc_bytes", "fs_bytes"}),
)
