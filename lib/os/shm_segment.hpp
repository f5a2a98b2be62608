// POSIX shared-memory objects: create, open, map at an aligned address, unmap, unlink.
// The only file that makes shm system calls.
#pragma once

#include <dragon/return_codes.h>

#include <sys/types.h>

#include <ctime>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace dragonmem::detail {

inline constexpr std::string_view k_shm_dir = "/dev/shm";

struct ShmMapping {
    std::uint8_t* base = nullptr;  // start of the object in this process
    std::size_t bytes = 0;
};

// Which file an object is: a name can be unlinked and given to a new object meanwhile.
struct ShmObjectId {
    std::uint64_t dev = 0;
    std::uint64_t ino = 0;
    bool known() const noexcept { return ino != 0; }
};

// Creates the object exclusively (MEMORY_ERRNO naming the pool if it exists), sets its
// permission bits to exactly `mode` (umask-independent) and its size to `bytes`.
dragonError_t shm_create(const std::string& shm_name, std::size_t bytes, mode_t mode, int& fd_out,
                         ShmObjectId& id_out);

// Opens an existing object read-write. ENOENT gives OBJECT_DESTROYED when
// `destroyed_if_missing` (a descriptor's pool that is gone), MEMORY_ERRNO otherwise;
// `pool_name` names the pool in that message.
dragonError_t shm_open_existing(const std::string& shm_name, std::string_view pool_name, bool destroyed_if_missing,
                                int& fd_out);

// Maps `bytes` of `fd` shared, placing object offset `aligned_offset` at an address that
// is a multiple of `alignment` (a power of two), so heap blocks are aligned to their size
// in every process.
dragonError_t shm_map(int fd, std::size_t bytes, std::size_t aligned_offset, std::size_t alignment,
                      ShmMapping& out);

void shm_unmap(ShmMapping& mapping) noexcept;

// Removes the name; 0 or an errno value.
int shm_unlink_name(const std::string& shm_name) noexcept;
// Removes the name only if it still names object `id` (a failed creation must not
// remove a pool someone else made under the name after ours was removed).
void shm_unlink_if_same(const std::string& shm_name, const ShmObjectId& id) noexcept;

// The object's identity and its last change (ctime or mtime, whichever is later).
dragonError_t shm_stat(int fd, const std::string& shm_name, std::uint64_t& size_out, ShmObjectId& id_out,
                       timespec& changed_out);

// ---- backing (tmpfs gives a page its memory on first touch; see pool_layout.hpp)

// Free and total bytes of the file system holding the objects; false if unknown.
bool shm_space(std::uint64_t& free_out, std::uint64_t& total_out) noexcept;
// "/dev/shm has F B free of T B" (or that it could not be asked), for messages.
std::string shm_space_text();

// Gives [offset, offset + bytes) of the object its memory: 0 or an errno value (ENOSPC
// when the file system is full).
int shm_back_fd(int fd, std::uint64_t offset, std::uint64_t bytes) noexcept;
// The same through this process's mapping of object `id` (no descriptor kept open):
// MADV_POPULATE_WRITE, which reports what would have been a SIGBUS as an error (mapped
// to ENOSPC); on kernels without it (before 5.14), shm_back_by_name.
int shm_back_mapped(const ShmMapping& mapping, const std::string& shm_name, const ShmObjectId& id,
                    std::uint64_t offset, std::uint64_t bytes) noexcept;
// Reopens `shm_name`, checks it still is object `id` (ESTALE if not) and backs the range.
int shm_back_by_name(const std::string& shm_name, const ShmObjectId& id, std::uint64_t offset,
                     std::uint64_t bytes) noexcept;
// Writes `bytes` at `offset` with pwrite (allocating the page, so a full file system is
// ENOSPC here rather than a SIGBUS later): 0 or an errno value.
// Drops this process's page-table entries for the whole pages of [begin, end) of a
// shared mapping (madvise MADV_DONTNEED). On shm this only unmaps locally: the bytes stay
// in the object and the next access faults the same pages back in. For scans over large
// regions (a listing, the thread caches' take-back), so that one pass over a million
// manifest records does not leave 64 MB resident in the scanning process. Best effort: a
// failure only costs memory, so it is ignored.
void shm_drop_local_pages(const void* begin, const void* end) noexcept;

int shm_write_at(int fd, const void* data, std::size_t bytes, std::uint64_t offset) noexcept;

}  // namespace dragonmem::detail
