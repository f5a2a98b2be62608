// hugetlbfs files for hugepage pools (hugepage_file.hpp).
#include "os/hugepage_file.hpp"

#include "os/error.hpp"
#include "os/proc.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14
#endif

namespace dragonmem::detail {

namespace {

std::string meminfo_field(const std::string& text, const char* key) {
    const std::size_t at = text.find(key);
    if (at == std::string::npos) return "?";
    std::size_t start = at + std::strlen(key);
    while (start < text.size() && (text[start] == ' ' || text[start] == ':')) ++start;
    return text.substr(start, text.find('\n', start) - start);
}

}  // namespace

std::string hugepage_counts_text() {
    const std::string text = read_kernel_text("/proc/meminfo");
    return fmt::format("HugePages_Total {}, HugePages_Free {}, HugePages_Rsvd {} (Hugepagesize {})",
                       meminfo_field(text, "HugePages_Total"), meminfo_field(text, "HugePages_Free"),
                       meminfo_field(text, "HugePages_Rsvd"), meminfo_field(text, "Hugepagesize"));
}

dragonError_t hugepage_mount(std::string& dir_out) {
    std::istringstream in(read_kernel_text("/proc/self/mounts"));
    std::string line;
    std::string other;  // a hugetlbfs mount we cannot use, for the message
    while (std::getline(in, line)) {
        std::istringstream fields(line);
        std::string device, dir, type, options;
        if (!(fields >> device >> dir >> type >> options) || type != "hugetlbfs") continue;
        if (options.find("pagesize=2M") == std::string::npos) {
            other = fmt::format("{} ({})", dir, options);
            continue;
        }
        if (::access(dir.c_str(), W_OK | X_OK) != 0) {
            other = fmt::format("{} (not writable by this process)", dir);
            continue;
        }
        dir_out = dir;
        return DRAGON_SUCCESS;
    }
    return failf(DRAGON_MEMORY_ERRNO,
                 "no hugetlbfs mount with 2 MiB pages that this process can write in /proc/self/mounts{}{}: mount one "
                 "(mount -t hugetlbfs -o pagesize=2M none /dev/hugepages) and reserve pages "
                 "(/proc/sys/vm/nr_hugepages); {}",
                 other.empty() ? "" : "; found ", other, hugepage_counts_text());
}

dragonError_t hugepage_create(const std::string& path, std::size_t bytes, mode_t mode, int& fd_out,
                              ShmObjectId& id_out) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        const int err = errno;
        return fail_errno(DRAGON_MEMORY_ERRNO, err, fmt::format("creating huge-page file '{}'", path));
    }
    struct stat st {};
    if (::fchmod(fd, mode) != 0 || ::ftruncate(fd, static_cast<off_t>(bytes)) != 0 || ::fstat(fd, &st) != 0) {
        const int err = errno;
        ::close(fd);
        ::unlink(path.c_str());
        return fail_errno(DRAGON_MEMORY_ERRNO, err, fmt::format("sizing huge-page file '{}' to {} B", path, bytes));
    }
    id_out = ShmObjectId{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)};
    fd_out = fd;
    return DRAGON_SUCCESS;
}

dragonError_t hugepage_open(const std::string& path, const ShmObjectId& expected, int& fd_out) {
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        const int err = errno;
        if (err == ENOENT)
            return failf(DRAGON_OBJECT_DESTROYED,
                         "the pool's huge-page file '{}' does not exist (removed, or its hugetlbfs mount is not "
                         "visible in this mount namespace)",
                         path);
        return fail_errno(DRAGON_MEMORY_ERRNO, err, fmt::format("opening huge-page file '{}'", path));
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || static_cast<std::uint64_t>(st.st_dev) != expected.dev ||
        static_cast<std::uint64_t>(st.st_ino) != expected.ino) {
        ::close(fd);
        return failf(DRAGON_OBJECT_DESTROYED, "huge-page file '{}' is not the pool's (it was replaced)", path);
    }
    fd_out = fd;
    return DRAGON_SUCCESS;
}

dragonError_t hugepage_map_over(int fd, std::uint8_t* at, std::size_t bytes, const std::string& pool_name) {
    void* mapped = ::mmap(at, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
    if (mapped == MAP_FAILED) {
        const int err = errno;
        if (err == ENOMEM)
            return failf(DRAGON_OUT_OF_SPACE,
                         "pool '{}': its {} B heap needs {} huge pages of 2 MiB, which the system cannot reserve: {}; "
                         "reserve more (echo N > /proc/sys/vm/nr_hugepages)",
                         pool_name, bytes, bytes / k_huge_page_bytes, hugepage_counts_text());
        return fail_errno(DRAGON_MEMORY_ERRNO, err, fmt::format("pool '{}': mapping its huge-page heap", pool_name));
    }
    return DRAGON_SUCCESS;
}

int hugepage_populate(std::uint8_t* at, std::size_t bytes) noexcept {
    if (::madvise(at, bytes, MADV_POPULATE_WRITE) == 0) return 0;
    const int err = errno;
    if (err != EINVAL) return err;
    // Kernel before 5.14: the reservation made at mmap guarantees the faults; touch
    // one byte per page so the pages are placed now, by this process's policy.
    for (std::size_t off = 0; off < bytes; off += k_huge_page_bytes)
        reinterpret_cast<volatile std::uint8_t*>(at)[off] = 0;
    return 0;
}

void hugepage_unlink_if_same(const char* path, const ShmObjectId& id) noexcept {
    struct stat st {};
    if (::lstat(path, &st) != 0) return;
    if (static_cast<std::uint64_t>(st.st_dev) != id.dev || static_cast<std::uint64_t>(st.st_ino) != id.ino) return;
    ::unlink(path);
}

}  // namespace dragonmem::detail
