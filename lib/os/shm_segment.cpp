// shm_open/ftruncate/mmap wrappers with errors that name the object and the errno.
#include "os/shm_segment.hpp"

#include "os/error.hpp"
#include "os/errno_text.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14; older headers lack the name
#endif

namespace {
constexpr std::uintptr_t k_page_bytes_local = 4096;

// `prefix` + `name` in `out`, built on the stack: the noexcept calls below run on failure
// paths (an undo after std::bad_alloc), where allocating a std::string could throw.
// False if it does not fit (no shm name is that long).
bool path_on_stack(char (&out)[256], std::string_view prefix, const std::string& name) noexcept {
    if (prefix.size() + name.size() + 1 > sizeof out) return false;
    std::memcpy(out, prefix.data(), prefix.size());
    std::memcpy(out + prefix.size(), name.c_str(), name.size() + 1);
    return true;
}

std::uint64_t page_floor(std::uint64_t value) { return value & ~std::uint64_t{k_page_bytes_local - 1}; }
std::uint64_t page_ceil(std::uint64_t value) { return page_floor(value + k_page_bytes_local - 1); }
}

namespace dragonmem::detail {

dragonError_t shm_create(const std::string& shm_name, std::size_t bytes, mode_t mode, int& fd_out,
                         ShmObjectId& id_out) {
    std::string path = "/" + shm_name;
    int fd = ::shm_open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        int err = errno;
        if (err == EEXIST)
            return with_errno(failf(DRAGON_MEMORY_ERRNO, "pool shm object '{}' already exists (name in use): {} (errno {})",
                                    shm_name, errno_text(err), err),
                              err);
        return fail_errno(DRAGON_MEMORY_ERRNO, err, fmt::format("shm_open('{}', O_CREAT|O_EXCL)", shm_name));
    }
    // shm_open applies the umask; the pool's mode must be exactly what was asked.
    struct stat st {};
    if (::fstat(fd, &st) != 0 || ::fchmod(fd, mode) != 0 || ::ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
        int err = errno;
        ::close(fd);
        ::shm_unlink(path.c_str());
        return fail_errno(DRAGON_MEMORY_ERRNO, err,
                          fmt::format("sizing pool shm object '{}' to {} bytes with mode {:04o}", shm_name, bytes,
                                      static_cast<unsigned>(mode)));
    }
    id_out = ShmObjectId{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)};
    fd_out = fd;
    return DRAGON_SUCCESS;
}

dragonError_t shm_open_existing(const std::string& shm_name, std::string_view pool_name, bool destroyed_if_missing,
                                int& fd_out) {
    std::string path = "/" + shm_name;
    int fd = ::shm_open(path.c_str(), O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) {
        int err = errno;
        if (err == ENOENT && destroyed_if_missing)
            return with_errno(failf(DRAGON_OBJECT_DESTROYED, "pool shm object '{}' does not exist: the pool was destroyed",
                                    shm_name),
                              err);
        if (err == ENOENT)
            return with_errno(failf(DRAGON_MEMORY_ERRNO, "no pool '{}' on this host (no {}/{}): {} (errno {})",
                                    pool_name, k_shm_dir, shm_name, errno_text(err), err),
                              err);
        return fail_errno(DRAGON_MEMORY_ERRNO, err, fmt::format("shm_open('{}') to attach", shm_name));
    }
    fd_out = fd;
    return DRAGON_SUCCESS;
}

dragonError_t shm_map(int fd, std::size_t bytes, std::size_t aligned_offset, std::size_t alignment,
                      ShmMapping& out) {
    // Reserve address space with slack, then map the object over an aligned part of it.
    std::size_t reserve_bytes = bytes + alignment;
    void* reservation = ::mmap(nullptr, reserve_bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (reservation == MAP_FAILED)
        return fail_errno(DRAGON_MEMORY_ERRNO, errno, fmt::format("reserving {} bytes of address space", reserve_bytes));
    auto start = reinterpret_cast<std::uintptr_t>(reservation);
    std::uintptr_t aligned_heap = (start + aligned_offset + alignment - 1) & ~(static_cast<std::uintptr_t>(alignment) - 1);
    std::uintptr_t map_at = aligned_heap - aligned_offset;
    // Addresses inside the reservation are formed from its pointer, not cast from the
    // integers: the compiler keeps knowing what they point into.
    auto* reserved = static_cast<std::uint8_t*>(reservation);
    void* mapped = ::mmap(reserved + (map_at - start), bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
    if (mapped == MAP_FAILED) {
        int err = errno;
        ::munmap(reservation, reserve_bytes);
        return fail_errno(DRAGON_MEMORY_ERRNO, err, fmt::format("mapping {} bytes of the pool", bytes));
    }
    // Give back the slack on both sides.
    if (map_at > start) ::munmap(reservation, map_at - start);
    std::uintptr_t end = map_at + bytes;
    std::uintptr_t reserve_end = start + reserve_bytes;
    std::uintptr_t end_page = (end + k_page_bytes_local - 1) & ~(k_page_bytes_local - 1);
    if (reserve_end > end_page) ::munmap(reserved + (end_page - start), reserve_end - end_page);
    out.base = static_cast<std::uint8_t*>(mapped);
    out.bytes = bytes;
    return DRAGON_SUCCESS;
}

void shm_unmap(ShmMapping& mapping) noexcept {
    if (mapping.base != nullptr) ::munmap(mapping.base, mapping.bytes);
    mapping.base = nullptr;
    mapping.bytes = 0;
}

int shm_unlink_name(const std::string& shm_name) noexcept {
    // The path is built on the stack: this runs on failure paths, when memory may be short.
    char path[256];
    if (!path_on_stack(path, "/", shm_name)) return ENAMETOOLONG;
    return ::shm_unlink(path) == 0 ? 0 : errno;
}

void shm_unlink_if_same(const std::string& shm_name, const ShmObjectId& id) noexcept {
    char path[256];
    if (!path_on_stack(path, "/dev/shm/", shm_name)) return;
    static_assert(k_shm_dir == "/dev/shm");
    struct stat st {};
    if (::lstat(path, &st) != 0) return;
    if (static_cast<std::uint64_t>(st.st_dev) != id.dev || static_cast<std::uint64_t>(st.st_ino) != id.ino) return;
    shm_unlink_name(shm_name);
}

dragonError_t shm_stat(int fd, const std::string& shm_name, std::uint64_t& size_out, ShmObjectId& id_out,
                       timespec& changed_out) {
    struct stat st {};
    if (::fstat(fd, &st) != 0)
        return fail_errno(DRAGON_MEMORY_ERRNO, errno, fmt::format("fstat of shm object '{}'", shm_name));
    size_out = static_cast<std::uint64_t>(st.st_size);
    id_out = ShmObjectId{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)};
    bool ctime_later = st.st_ctim.tv_sec > st.st_mtim.tv_sec ||
                       (st.st_ctim.tv_sec == st.st_mtim.tv_sec && st.st_ctim.tv_nsec > st.st_mtim.tv_nsec);
    changed_out = ctime_later ? st.st_ctim : st.st_mtim;
    return DRAGON_SUCCESS;
}

bool shm_space(std::uint64_t& free_out, std::uint64_t& total_out) noexcept {
    struct statvfs vfs {};
    if (::statvfs("/dev/shm", &vfs) != 0) return false;  // k_shm_dir, as a C string
    free_out = static_cast<std::uint64_t>(vfs.f_bavail) * vfs.f_frsize;
    total_out = static_cast<std::uint64_t>(vfs.f_blocks) * vfs.f_frsize;
    return true;
}

std::string shm_space_text() {
    std::uint64_t free_bytes = 0, total_bytes = 0;
    if (!shm_space(free_bytes, total_bytes)) return fmt::format("statvfs({}) failed", k_shm_dir);
    return fmt::format("{} has {} B free of {} B", k_shm_dir, free_bytes, total_bytes);
}

int shm_back_fd(int fd, std::uint64_t offset, std::uint64_t bytes) noexcept {
    if (bytes == 0) return 0;
    // posix_fallocate returns the error instead of setting errno.
    return ::posix_fallocate(fd, static_cast<off_t>(offset), static_cast<off_t>(bytes));
}

int shm_back_by_name(const std::string& shm_name, const ShmObjectId& id, std::uint64_t offset,
                     std::uint64_t bytes) noexcept {
    char path[256];
    if (!path_on_stack(path, "/", shm_name)) return ENAMETOOLONG;
    int fd = ::shm_open(path, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) return errno == ENOENT ? ESTALE : errno;
    struct stat st {};
    int err = 0;
    if (::fstat(fd, &st) != 0)
        err = errno;
    else if (static_cast<std::uint64_t>(st.st_dev) != id.dev || static_cast<std::uint64_t>(st.st_ino) != id.ino)
        err = ESTALE;  // the name now belongs to another object: ours was removed
    else
        err = shm_back_fd(fd, offset, bytes);
    ::close(fd);
    return err;
}

int shm_back_mapped(const ShmMapping& mapping, const std::string& shm_name, const ShmObjectId& id,
                    std::uint64_t offset, std::uint64_t bytes) noexcept {
    if (bytes == 0) return 0;
    std::uint64_t from = page_floor(offset);
    std::uint64_t to = page_ceil(offset + bytes);
    if (::madvise(mapping.base + from, to - from, MADV_POPULATE_WRITE) == 0) return 0;
    int err = errno;
    // EFAULT: populating would have raised SIGBUS, i.e. tmpfs could not give the page.
    if (err == EFAULT) return ENOSPC;
    if (err == EINVAL) return shm_back_by_name(shm_name, id, from, to - from);  // kernel before 5.14
    return err;
}

int shm_write_at(int fd, const void* data, std::size_t bytes, std::uint64_t offset) noexcept {
    const auto* cursor = static_cast<const std::uint8_t*>(data);
    while (bytes > 0) {
        ssize_t wrote = ::pwrite(fd, cursor, bytes, static_cast<off_t>(offset));
        if (wrote < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        cursor += wrote;
        bytes -= static_cast<std::size_t>(wrote);
        offset += static_cast<std::uint64_t>(wrote);
    }
    return 0;
}

void shm_drop_local_pages(const void* begin, const void* end) noexcept {
    static const std::uintptr_t page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
    // Offsets from `begin` rather than integers turned into pointers: the page bounds stay
    // derived from the mapping's own pointer. Only whole pages: a partial one at either
    // end may hold what the caller did not scan.
    const auto* bytes = static_cast<const char*>(begin);
    const std::uintptr_t at = reinterpret_cast<std::uintptr_t>(begin);
    const std::uintptr_t first = (at + page - 1) & ~(page - 1);
    const std::uintptr_t last = reinterpret_cast<std::uintptr_t>(end) & ~(page - 1);
    if (last > first) (void)::madvise(const_cast<char*>(bytes + (first - at)), last - first, MADV_DONTNEED);
}

}  // namespace dragonmem::detail
