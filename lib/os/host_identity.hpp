// Which host and runtime this process is on: decides whether a descriptor is local.
#pragma once

#include <cstdint>

namespace dragonmem::detail {

// 64-bit id of this host: a hash of $POD_UID when set, else of
// /proc/sys/kernel/random/boot_id. Never 0. Read once per process.
std::uint64_t this_hostid();

// The runtime id: $DRAGON_RT_UID (decimal), default 0. Read once per process.
std::uint64_t this_rt_uid();

// FNV-1a 64 of a byte string; the hash behind hostid.
std::uint64_t fnv1a64(const void* data, std::size_t len);

}  // namespace dragonmem::detail
