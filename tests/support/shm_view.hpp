// A test's own mapping of a pool's shm object (/dev/shm/dragonmem.NAME), independent of
// the library's, typed with the library's layout (lib/pool/pool_layout.hpp): to read the lock
// word after a kill, and to corrupt headers, manifest records and free blocks on purpose.
#pragma once

#include "pool/pool_layout.hpp"
#include "shm_names.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <string>

namespace dmtest {

class ShmView {
public:
    ShmView(const std::string& pool_name, bool writable) {
        const std::string path = shm_path(pool_name);
        int fd = ::open(path.c_str(), writable ? O_RDWR : O_RDONLY);
        if (fd < 0) return;
        struct stat st {};
        if (::fstat(fd, &st) == 0 && st.st_size > 0) {
            bytes_ = static_cast<std::size_t>(st.st_size);
            void* m = ::mmap(nullptr, bytes_, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
            base_ = m == MAP_FAILED ? nullptr : static_cast<std::uint8_t*>(m);
        }
        ::close(fd);
    }
    ~ShmView() {
        if (base_ != nullptr) ::munmap(base_, bytes_);
    }
    ShmView(const ShmView&) = delete;
    ShmView& operator=(const ShmView&) = delete;

    bool ok() const { return base_ != nullptr && bytes_ >= sizeof(dragonmem::detail::PoolHeader); }
    std::size_t bytes() const { return bytes_; }
    std::uint8_t* base() const { return base_; }
    dragonmem::detail::PoolHeader* header() const { return reinterpret_cast<dragonmem::detail::PoolHeader*>(base_); }
    dragonmem::detail::ManifestRecord* records() const {
        return reinterpret_cast<dragonmem::detail::ManifestRecord*>(base_ + header()->manifest_offset);
    }
    dragonmem::detail::ManifestRecord& record_of(std::uint64_t id) const {
        return records()[id & ((std::uint64_t{1} << header()->id_slot_bits) - 1)];
    }
    std::uint8_t* heap() const { return base_ + header()->heap_offset; }
    // The thread id in the pool lock's owner word (0: free), without the waiters bit.
    std::uint32_t lock_owner_tid() const {
        return static_cast<std::uint32_t>(
            dragonmem::detail::lock_owner_of(header()->lock.word.load(std::memory_order_acquire)));
    }

private:
    std::uint8_t* base_ = nullptr;
    std::size_t bytes_ = 0;
};

}  // namespace dmtest
