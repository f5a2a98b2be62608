// hostid from $POD_UID or boot_id (as Dragon derives it), runtime id from $DRAGON_RT_UID.
#include "os/host_identity.hpp"

#include "os/proc.hpp"

#include <cstdlib>
#include <string>

namespace dragonmem::detail {

std::uint64_t fnv1a64(const void* data, std::size_t len) {
    const auto* bytes = static_cast<const unsigned char*>(data);
    std::uint64_t hash = 0xcbf29ce484222325ULL;
    for (std::size_t i = 0; i < len; ++i) {
        hash ^= bytes[i];
        hash *= 0x100000001b3ULL;
    }
    return hash;
}

namespace {

std::uint64_t compute_hostid() {
    std::string source;
    // getenv races only with a setenv in another thread; read once per process (docs/design.md §7).
    if (const char* pod = std::getenv("POD_UID"); pod != nullptr && *pod != '\0') {  // NOLINT(concurrency-mt-unsafe)
        source = std::string("pod:") + pod;
    } else {
        source = "boot:" + read_boot_id();
    }
    std::uint64_t id = fnv1a64(source.data(), source.size());
    return id == 0 ? 1 : id;  // 0 would read as "no host" in a descriptor
}

std::uint64_t compute_rt_uid() {
    const char* text = std::getenv("DRAGON_RT_UID");  // NOLINT(concurrency-mt-unsafe): as POD_UID above
    if (text == nullptr || *text == '\0') return 0;
    char* end = nullptr;
    unsigned long long value = std::strtoull(text, &end, 10);
    return (end != nullptr && *end == '\0') ? value : 0;
}

}  // namespace

std::uint64_t this_hostid() {
    static const std::uint64_t id = compute_hostid();
    return id;
}

std::uint64_t this_rt_uid() {
    static const std::uint64_t id = compute_rt_uid();
    return id;
}

}  // namespace dragonmem::detail
