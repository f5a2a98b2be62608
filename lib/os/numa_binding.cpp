// NUMA placement through mbind(2) (numa_binding.hpp).
#include "os/numa_binding.hpp"

#include "os/proc.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <string_view>

namespace dragonmem::detail {

namespace {
constexpr int k_mpol_bind = 2;             // MPOL_BIND, <linux/mempolicy.h>
constexpr unsigned long k_mask_bits = 1024;  // nodes 0..1023 (the kernel's usual MAX_NUMNODES)
}  // namespace

std::string numa_online_nodes() {
    std::string text = read_kernel_text("/sys/devices/system/node/online");
    // One line: "0" or "0-3,5".
    if (const std::size_t end = text.find('\n'); end != std::string::npos) text.resize(end);
    return text;
}

bool numa_node_online(int node) {
    if (node < 0) return false;
    const std::string list = numa_online_nodes();
    if (list.empty()) return node == 0;
    // "a-b,c,...": ranges and single nodes.
    std::string_view rest(list);
    while (!rest.empty()) {
        const std::size_t comma = rest.find(',');
        std::string_view item = rest.substr(0, comma);
        rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
        int lo = 0, hi = 0;
        const std::size_t dash = item.find('-');
        auto parse = [](std::string_view t, int& out) {
            return std::from_chars(t.data(), t.data() + t.size(), out).ec == std::errc{};
        };
        if (dash == std::string_view::npos) {
            if (!parse(item, lo)) continue;
            hi = lo;
        } else if (!parse(item.substr(0, dash), lo) || !parse(item.substr(dash + 1), hi)) {
            continue;
        }
        if (node >= lo && node <= hi) return true;
    }
    return false;
}

int numa_bind(void* addr, std::size_t bytes, int node) noexcept {
    if (node < 0 || static_cast<unsigned long>(node) >= k_mask_bits) return EINVAL;
    unsigned long mask[k_mask_bits / (8 * sizeof(unsigned long))] = {};
    mask[node / (8 * sizeof(unsigned long))] = 1UL << (node % (8 * sizeof(unsigned long)));
    // maxnode is the mask's bit count + 1 (the kernel drops the last bit).
    if (::syscall(SYS_mbind, addr, bytes, k_mpol_bind, mask, k_mask_bits + 1, 0UL) != 0) return errno;
    return 0;
}

}  // namespace dragonmem::detail
