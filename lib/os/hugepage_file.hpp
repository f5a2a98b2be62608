// Huge-page backing for DRAGON_MEMORY_TYPE_HUGEPAGE pools, as Dragon does it: a file in a
// hugetlbfs mount with 2 MiB pages (Dragon looks for "hugetlbfs" with "pagesize=2M" in
// /proc/mounts and puts its data segment there). Here the file holds the pool's heap;
// the pool's metadata stays in its /dev/shm object, which names the file, so the pool is
// attached, listed and destroyed by name like any other. The heap's huge pages are
// reserved by the creator's mapping (a MAP_SHARED hugetlbfs mapping reserves them all
// at mmap time, or fails) and then given memory: no page of the heap can fault later,
// so there is never a SIGBUS.
#pragma once

#include "os/shm_segment.hpp"

#include <dragon/return_codes.h>

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace dragonmem::detail {

inline constexpr std::uint64_t k_huge_page_bytes = std::uint64_t{2} << 20;

// A hugetlbfs mount with 2 MiB pages that this process can write, from
// /proc/self/mounts. MEMORY_ERRNO naming what is missing when there is none.
dragonError_t hugepage_mount(std::string& dir_out);
// "HugePages_Total T, HugePages_Free F, HugePages_Rsvd R (2048 kB each)", for messages.
std::string hugepage_counts_text();

// Creates `path` exclusively with exactly `mode`, sized `bytes` (a multiple of 2 MiB).
dragonError_t hugepage_create(const std::string& path, std::size_t bytes, mode_t mode, int& fd_out,
                              ShmObjectId& id_out);
// Opens `path` and checks it is the file `expected` (the pool's header records it):
// OBJECT_DESTROYED when gone or replaced.
dragonError_t hugepage_open(const std::string& path, const ShmObjectId& expected, int& fd_out);
// Maps `bytes` of `fd` shared over [at, at + bytes) (MAP_FIXED, 2 MiB aligned), which
// reserves the huge pages; OUT_OF_SPACE naming the counts when there are too few.
dragonError_t hugepage_map_over(int fd, std::uint8_t* at, std::size_t bytes, const std::string& pool_name);
// Gives every page of the mapping memory now (MADV_POPULATE_WRITE); 0 or an errno.
int hugepage_populate(std::uint8_t* at, std::size_t bytes) noexcept;
// Removes `path` if it still is file `id`. Noexcept, no allocation: runs on failure paths.
void hugepage_unlink_if_same(const char* path, const ShmObjectId& id) noexcept;

}  // namespace dragonmem::detail
