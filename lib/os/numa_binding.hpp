// Binding a shared mapping's pages to one NUMA node, with raw syscalls (no libnuma).
// mbind on a MAP_SHARED mapping of a shm object sets the object's shared policy: every
// page of it is then allocated on that node, whichever process first touches it (or
// fallocate backs it), so the creator binds before anything is backed.
#pragma once

#include <cstddef>
#include <string>

namespace dragonmem::detail {

// The kernel's list of online nodes ("0", "0-1,4"), empty when /sys cannot say.
std::string numa_online_nodes();
// Whether `node` is in that list (an unreadable list: only node 0 counts as online).
bool numa_node_online(int node);
// mbind(MPOL_BIND) of [addr, addr + bytes) to `node`; 0 or an errno.
int numa_bind(void* addr, std::size_t bytes, int node) noexcept;

}  // namespace dragonmem::detail
