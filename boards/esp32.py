"""ESP32 (ESP32-WROOM-32 module, no PSRAM) with the ESP32_GENERIC firmware."""

from . import BoardProfile

PROFILE = BoardProfile(
    name="esp32",
    title="ESP32-WROOM-32 (no PSRAM), ESP32_GENERIC firmware",
    mcu="ESP32, 2x Xtensa LX6",
    clock_hz=160_000_000,
    ram_bytes=520 * 1024,
    free_heap_bytes=105_000,
    max_alloc_bytes=56 * 1024,
    flash_bytes=4 * 1024 * 1024,
    fs_bytes=0x400000 - 0x220000,
    fs_block_bytes=4096,
    mpy_arch="xtensawin",
    viper=True,
    platform="esp32",
    machine="with ESP32",
    aliases=("esp32-wroom", "esp32-wroom-32", "esp32_generic"),
    sources={
        "mcu": "Espressif ESP32 datasheet (ESP32-D0WD in the WROOM-32 module)",
        "clock_hz": "ESP-IDF default CONFIG_ESP_DEFAULT_CPU_FREQ_MHZ=160, not overridden by "
                    "micropython ports/esp32/boards/sdkconfig.base; machine.freq(240000000) "
                    "raises it",
        "ram_bytes": "Espressif ESP32 datasheet: 520 KB on-chip SRAM",
        "free_heap_bytes": "the Python heap starts at 56 KiB and grows on demand "
                           "(MICROPY_GC_SPLIT_HEAP_AUTO); after growing once it is 111,936 B "
                           "with ~40 KB left for ESP-IDF (micropython PR #13219); 111,168 B "
                           "total reported by mem_info() on an ESP32 in ddgarrett/psos "
                           "memory.md; minus what the REPL holds after boot",
        "max_alloc_bytes": "one heap area: ports/esp32/mpconfigport.h sets "
                           "MICROPY_GC_INITIAL_HEAP_SIZE to 56 KiB on ESP32 and the area added "
                           "on demand is about as large (PR #13219); a larger single buffer "
                           "needs a larger free block in the ESP-IDF heap, not assured",
        "flash_bytes": "ESP32-WROOM-32 datasheet: 4 MB SPI flash",
        "fs_bytes": "micropython ports/esp32/partitions-4MiBplus.csv (used by ESP32_GENERIC "
                    "per boards/sdkconfig.base): the app partition ends at 0x220000 and the "
                    "rest of the 4 MiB flash is the filesystem",
        "fs_block_bytes": "LittleFS on the flash's 4 KiB erase sectors (esp32 port default)",
        "mpy_arch": "MicroPython docs, 'MicroPython .mpy files': ESP32 -> xtensawin; tinyrt "
                    "DESIGN.md",
        "viper": "ports/esp32 enables MICROPY_EMIT_XTENSAWIN (native and viper emitters)",
    },
    estimates=frozenset({"free_heap_bytes", "max_alloc_bytes"}),
)
