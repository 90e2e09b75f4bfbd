"""ESP32-S3 with 8 MB PSRAM (e.g. an N8R8 module) with the ESP32_GENERIC_S3 SPIRAM_OCT firmware."""

from . import BoardProfile

PROFILE = BoardProfile(
    name="esp32s3",
    title="ESP32-S3 with 8 MB PSRAM (N8R8), ESP32_GENERIC_S3 SPIRAM_OCT firmware",
    mcu="ESP32-S3, 2x Xtensa LX7",
    clock_hz=240_000_000,
    ram_bytes=512 * 1024 + 8 * 1024 * 1024,
    free_heap_bytes=8_000_000,
    max_alloc_bytes=4 * 1024 * 1024,
    flash_bytes=8 * 1024 * 1024,
    fs_bytes=0x4F0000,
    fs_block_bytes=4096,
    mpy_arch="xtensawin",
    viper=True,
    platform="esp32",
    machine="with ESP32S3",
    aliases=("esp32-s3", "esp32_generic_s3", "esp32s3-psram"),
    sources={
        "mcu": "Espressif ESP32-S3 datasheet",
        "clock_hz": "micropython ports/esp32/boards/ESP32_GENERIC_S3/mpconfigboard.cmake: the "
                    "SPIRAM_OCT variant adds boards/sdkconfig.240mhz",
        "ram_bytes": "Espressif ESP32-S3 datasheet (512 KB SRAM) + the module's 8 MB PSRAM",
        "free_heap_bytes": "mem_info() on an 8 MB-SPIRAM ESP32-S3 (UM ProS3): heap 64,000 B "
                           "with 'max new split' 8,257,536 B (micropython issue #12237); "
                           "gc.mem_free() includes that split (PR #12366)",
        "max_alloc_bytes": "a new heap area is added in PSRAM for a large allocation (PR "
                           "#12141); half the PSRAM leaves room for fragmentation",
        "flash_bytes": "ESP32-S3-WROOM-1 N8R8 datasheet: 8 MB flash",
        "fs_bytes": "micropython ports/esp32/partitions-8MiB.csv (ESP32_GENERIC_S3 "
                    "sdkconfig.board): vfs partition 0x4F0000 bytes",
        "fs_block_bytes": "LittleFS on the flash's 4 KiB erase sectors (esp32 port default)",
        "mpy_arch": "MicroPython docs, 'MicroPython .mpy files': ESP32-S3 -> xtensawin",
        "viper": "ports/esp32 enables MICROPY_EMIT_XTENSAWIN (native and viper emitters)",
    },
    estimates=frozenset({"free_heap_bytes", "max_alloc_bytes"}),
)
