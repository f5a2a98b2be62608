// A C++ program as a user of the installed library writes it: the C++ API through
// <dragonmem/dragonmem.hpp>, an error thrown inside libdragonmem.so caught here as
// dragonmem::Error (one type identity across the library boundary), and the versions.
// Usage: consumer_cxx POOL_NAME [EXPECTED_VERSION]; prints "consumer_cxx ok" on success.
#include <dragonmem/dragonmem.hpp>

#include <cstdio>
#include <cstring>
#include <string>

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: consumer_cxx POOL_NAME [EXPECTED_VERSION]\n");
        return 2;
    }
    const std::string expected = argc > 2 ? argv[2] : dragonmem::version_string;
    if (expected != dragonmem::version() || expected != dragonmem::version_string ||
        std::to_string(dragonmem::version_major) + "." + std::to_string(dragonmem::version_minor) + "." +
                std::to_string(dragonmem::version_patch) != expected) {
        std::fprintf(stderr, "consumer_cxx: versions disagree: version() %s, version_string %s, expected %s\n",
                     dragonmem::version(), dragonmem::version_string, expected.c_str());
        return 1;
    }
    try {
        (void)dragonmem::Pool::create("no/slash", 1 << 16);
        std::fprintf(stderr, "consumer_cxx: create(\"no/slash\") did not throw\n");
        return 1;
    } catch (const dragonmem::Error& e) {
        if (e.code() != DRAGON_INVALID_ARGUMENT || std::strstr(e.what(), "no/slash") == nullptr) {
            std::fprintf(stderr, "consumer_cxx: create(\"no/slash\") threw %s: %s\n", e.code_name(), e.what());
            return 1;
        }
    }
    try {
        auto pool = dragonmem::Pool::create(argv[1], 1 << 16, 7);
        {
            dragonmem::Memory mem = pool.alloc(100);
            std::memcpy(mem.pointer(), "installed", 10);
            auto copy = dragonmem::Memory::attach_base64(mem.serialize_base64());
            if (std::strcmp(static_cast<const char*>(copy.pointer()), "installed") != 0) {
                std::fprintf(stderr, "consumer_cxx: attached copy reads differently\n");
                pool.destroy();
                return 1;
            }
            mem.free();
        }
        pool.destroy();
    } catch (const dragonmem::Error& e) {
        std::fprintf(stderr, "consumer_cxx: %s: %s\n", e.code_name(), e.what());
        try {
            dragonmem::Pool::force_remove(argv[1]);
        } catch (const dragonmem::Error&) {
        }
        return 1;
    }
    std::printf("consumer_cxx ok: dragonmem %s\n", dragonmem::version());
    return 0;
}
