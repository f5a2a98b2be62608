// dragonmem::Memory: RAII wrapper over the shared descriptor operations.
#include <dragonmem/memory.hpp>

#include "descr/alloc_fast_path.hpp"
#include "descr/base64.hpp"
#include "descr/operations.hpp"
#include "os/error.hpp"
#include "descr/memory_copy.hpp"

namespace dragonmem {

using detail::throw_if_failed;

namespace {
const detail::MemoryRef& checked(const detail::MemoryRef& ref, const char* op) {
    throw_if_failed(detail::mem_require_valid(ref, op));
    return ref;
}
}  // namespace

Memory Memory::attach(std::span<const std::uint8_t> serialized) {
    detail::MemoryRef ref;
    throw_if_failed(detail::mem_attach(ref, serialized));
    return Memory(std::move(ref));
}

Memory Memory::attach_base64(std::string_view base64) {
    detail::MemoryRef ref;
    throw_if_failed(detail::mem_attach_base64(ref, base64));
    return Memory(std::move(ref));
}

bool Memory::is_local() const { return checked(ref_, "is_local").mapping != nullptr; }
std::uint64_t Memory::id() const { return checked(ref_, "id").id; }
std::uint64_t Memory::type() const { return checked(ref_, "type").type; }
std::size_t Memory::size() const { return checked(ref_, "get_size").view_bytes; }
std::uint64_t Memory::block_offset() const { return checked(ref_, "block_offset").block_offset; }

void* Memory::pointer() const {
    void* out = nullptr;
    throw_if_failed(detail::mem_pointer(ref_, out));
    return out;
}

std::span<std::byte> Memory::bytes() const {
    if (on_device())
        throw_if_failed(detail::failf(DRAGON_INVALID_OPERATION,
                                      "bytes: allocation id {} is in a GPU pool: its bytes are device memory, not host "
                                      "memory (use read/write, or give pointer() to CUDA)",
                                      id()));
    return {static_cast<std::byte*>(pointer()), size()};
}

bool Memory::on_device() const {
    bool out = false;
    throw_if_failed(detail::mem_on_device(ref_, out));
    return out;
}

void Memory::read(std::size_t offset, std::span<std::byte> to) const {
    throw_if_failed(detail::mem_read(ref_, offset, to.data(), to.size()));
}

void Memory::write(std::size_t offset, std::span<const std::byte> from) const {
    throw_if_failed(detail::mem_write(ref_, offset, from.data(), from.size()));
}

Memory Memory::clone(std::ptrdiff_t offset, std::optional<std::size_t> length) const {
    detail::MemoryRef ref;
    std::size_t len = length.value_or(0);
    throw_if_failed(detail::mem_clone(ref, ref_, offset, length ? &len : nullptr));
    return Memory(std::move(ref));
}

void Memory::modify_size(std::size_t bytes, const timespec* timeout) {
    throw_if_failed(detail::mem_modify_size(ref_, bytes, timeout));
}

void Memory::free() {
    throw_if_failed(detail::mem_free_inline(ref_));
    ref_ = detail::MemoryRef{};
}

bool Memory::exists() const {
    bool out = false;
    throw_if_failed(detail::mem_exists(ref_, out));
    return out;
}

Pool Memory::pool() const {
    detail::PoolRef ref;
    throw_if_failed(detail::mem_pool(ref_, "get_pool", ref));
    return Pool(std::move(ref));
}

std::vector<std::uint8_t> Memory::serialize() const {
    std::vector<std::uint8_t> out;
    throw_if_failed(detail::mem_serialize(ref_, out));
    return out;
}

std::string Memory::serialize_base64() const { return detail::base64_encode(serialize()); }

std::string Memory::serialize_base64_without_secret() const {
    std::vector<std::uint8_t> out;
    throw_if_failed(detail::mem_serialize(ref_, out, false));
    return detail::base64_encode(out);
}

void Memory::copy_to(const Memory& to, std::optional<std::size_t> bytes) const {
    throw_if_failed(detail::mem_require_valid(ref_, "copy (source)"));
    throw_if_failed(detail::mem_copy(ref_, to.ref_, bytes.value_or(ref_.view_bytes)));
}

Memory Memory::copy_to_pool(const Pool& pool, const timespec* timeout) const {
    detail::MemoryRef out;
    throw_if_failed(detail::mem_copy_to_pool(out, ref_, pool.ref(), timeout));
    return Memory(std::move(out));
}

void Memory::clear(std::size_t start, std::optional<std::size_t> stop) const {
    throw_if_failed(detail::mem_clear(ref_, start, stop.value_or(SIZE_MAX)));
}

std::uint64_t Memory::hash() const {
    std::uint64_t out = 0;
    throw_if_failed(detail::mem_hash(ref_, out));
    return out;
}

bool Memory::bytes_equal(const Memory& other) const {
    bool out = false;
    throw_if_failed(detail::mem_equal(ref_, other.ref_, out));
    return out;
}

bool Memory::same_as(const Memory& other) const {
    bool out = false;
    throw_if_failed(detail::mem_is(ref_, other.ref_, out));
    return out;
}

}  // namespace dragonmem
