"""Raspberry Pi Pico (RP2040) with the RPI_PICO firmware."""

from . import BoardProfile

PROFILE = BoardProfile(
    name="rp2040",
    title="Raspberry Pi Pico (RP2040), RPI_PICO firmware",
    mcu="RP2040, 2x Arm Cortex-M0+",
    clock_hz=125_000_000,
    ram_bytes=264 * 1024,
    free_heap_bytes=209_936,
    max_alloc_bytes=190_000,
    flash_bytes=2 * 1024 * 1024,
    fs_bytes=1408 * 1024,
    fs_block_bytes=4096,
    mpy_arch="armv6m",
    viper=True,
    platform="rp2",
    machine="with RP2040",
    aliases=("pico", "rpi-pico", "rpi_pico", "pico-w"),
    sources={
        "mcu": "RP2040 datasheet",
        "clock_hz": "MicroPython's rp2 port runs the pico-sdk default 125 MHz (machine.freq(); "
                    "tinygo PR #2134 discussion); pico-sdk >= 2.1.1 certifies 200 MHz",
        "ram_bytes": "RP2040 datasheet: 264 KB SRAM",
        "free_heap_bytes": "gc.mem_free() at the REPL after boot: 209,936 B on v1.20 "
                           "(micropython issue #12557), 220,896 B on v1.23 (thonny issue "
                           "#2886); the GC heap is all RAM left after .bss and stacks (PR "
                           "#10968)",
        "max_alloc_bytes": "one contiguous heap: three 65,536-byte arrays fit after boot and a "
                           "fourth did not (micropython issue #12557)",
        "flash_bytes": "Raspberry Pi Pico datasheet: 2 MB QSPI flash",
        "fs_bytes": "micropython ports/rp2/boards/RPI_PICO/mpconfigboard.h: "
                    "MICROPY_HW_FLASH_STORAGE_BYTES (1408 * 1024)",
        "fs_block_bytes": "LittleFS v2 on the flash's 4 KiB erase sectors (rp2 port)",
        "mpy_arch": "MicroPython docs, 'MicroPython .mpy files': RP2040 -> armv6m; tinyrt "
                    "DESIGN.md",
        "viper": "ports/rp2 mpconfigport.h: MICROPY_EMIT_THUMB (1)",
    },
    estimates=frozenset({"max_alloc_bytes"}),
)
