// dragonmem::Memory: a move-only handle to (a view of) an allocation. Dropping the
// handle does not free the allocation: allocations live in the pool until free().
#pragma once

#include <dragonmem/detail/require_cxx20.hpp>

#include <dragonmem/detail/refs.hpp>
#include <dragonmem/error.hpp>
#include <dragonmem/pool.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace dragonmem {

class Memory {
public:
    // Attaches a serialized allocation descriptor (binary or base64).
    static Memory attach(std::span<const std::uint8_t> serialized);
    static Memory attach_base64(std::string_view base64);

    Memory() = default;
    Memory(Memory&&) noexcept = default;
    Memory& operator=(Memory&&) noexcept = default;
    Memory(const Memory&) = delete;
    Memory& operator=(const Memory&) = delete;
    ~Memory() = default;

    bool valid() const noexcept { return ref_.valid(); }
    bool is_local() const;
    std::uint64_t id() const;
    std::uint64_t type() const;
    std::size_t size() const;          // this view's bytes
    std::uint64_t block_offset() const;
    // nullptr for a zero-byte allocation. In a GPU pool (on_device()), a device pointer:
    // give it to CUDA, never dereference it on the host; read() and write() move bytes.
    void* pointer() const;
    std::span<std::byte> bytes() const;   // host memory only (fails in a GPU pool)
    bool on_device() const;               // in a DRAGON_MEMORY_TYPE_GPU pool
    // Host bytes out of / into this view at `offset` (cudaMemcpy for a GPU pool's).
    void read(std::size_t offset, std::span<std::byte> to) const;
    void write(std::size_t offset, std::span<const std::byte> from) const;

    Memory clone(std::ptrdiff_t offset = 0, std::optional<std::size_t> length = std::nullopt) const;
    void modify_size(std::size_t bytes, const timespec* timeout = nullptr);
    void free();                       // frees the allocation; this handle becomes empty
    bool exists() const;               // still live in its pool
    Pool pool() const;
    std::vector<std::uint8_t> serialize() const;
    std::string serialize_base64() const;
    // Without the pool's secret (and agent), as Pool::serialize_base64_without_secret.
    std::string serialize_base64_without_secret() const;

    // The bytes (Dragon's copy, clear, hash, equal, is). Sizes are checked before any byte
    // moves: a failure changes nothing.
    // Copies this view's first `bytes` (default: all of it) into `to`'s view.
    void copy_to(const Memory& to, std::optional<std::size_t> bytes = std::nullopt) const;
    // A new allocation in `pool` (waiting up to *timeout; nullptr: forever) holding a copy.
    Memory copy_to_pool(const Pool& pool, const timespec* timeout = nullptr) const;
    // Zeroes [start, stop); stop defaults to, and is clamped to, the end.
    void clear(std::size_t start = 0, std::optional<std::size_t> stop = std::nullopt) const;
    std::uint64_t hash() const;                  // Dragon's hash of the bytes (same values)
    bool bytes_equal(const Memory& other) const; // same size and bytes
    bool same_as(const Memory& other) const;     // same view of the same allocation

    const detail::MemoryRef& ref() const noexcept { return ref_; }
    explicit Memory(detail::MemoryRef ref) noexcept : ref_(std::move(ref)) {}

private:
    detail::MemoryRef ref_;
};

}  // namespace dragonmem
