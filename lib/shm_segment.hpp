// POSIX shared-memory objects: create, open, map at an aligned address, unmap, unlink.
// The only file that makes shm system calls.
#pragma once

#include <dragon/return_codes.h>

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace dragonmem::detail {

inline constexpr std::string_view k_shm_prefix = "dragonmem.";  // /dev/shm/dragonmem.<name>
inline constexpr std::string_view k_shm_dir = "/dev/shm";

// "dragonmem.<base>": the name `dragonmem ls` looks for.
std::string shm_name_for(std::string_view base_name);

struct ShmMapping {
    std::uint8_t* base = nullptr;  // start of the object in this process
    std::size_t bytes = 0;
};

// Creates the object exclusively (MEMORY_ERRNO naming the pool if it exists), sets its
// permission bits to exactly `mode` (umask-independent) and its size to `bytes`.
dragonError_t shm_create(const std::string& shm_name, std::size_t bytes, mode_t mode, int& fd_out);

// Opens an existing object read-write. ENOENT gives OBJECT_DESTROYED when
// `destroyed_if_missing` (a descriptor's pool that is gone), MEMORY_ERRNO otherwise.
dragonError_t shm_open_existing(const std::string& shm_name, bool destroyed_if_missing, int& fd_out);

// Maps `bytes` of `fd` shared, placing object offset `aligned_offset` at an address that
// is a multiple of `alignment` (a power of two), so heap blocks are aligned to their size
// in every process.
dragonError_t shm_map(int fd, std::size_t bytes, std::size_t aligned_offset, std::size_t alignment,
                      ShmMapping& out);

void shm_unmap(ShmMapping& mapping) noexcept;

// Removes the name; 0 or an errno value.
int shm_unlink_name(const std::string& shm_name) noexcept;

}  // namespace dragonmem::detail
