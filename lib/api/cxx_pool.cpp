// dragonmem::Pool: RAII wrapper over the shared descriptor operations; failures throw
// dragonmem::Error with the same code and message the C API reports.
#include <dragonmem/memory.hpp>
#include <dragonmem/pool.hpp>

#include "descr/alloc_fast_path.hpp"
#include "descr/base64.hpp"
#include "os/error.hpp"
#include "descr/operations.hpp"
#include "descr/pool_default.hpp"
#include "descr/process_local.hpp"

namespace dragonmem {

using detail::throw_if_failed;

namespace {

// C++ Memory objects keep their pool attached (one count), so that a Memory obtained
// from a temporary Pool stays usable; C descriptors borrow instead (Dragon's rule: the
// pool stays attached while its allocations are used).
Memory holding_pool(detail::MemoryRef&& ref, const detail::PoolRef& pool) {
    if (ref.mapping != nullptr && !ref.pool.valid()) ref.pool.mapping = pool.mapping;
    return Memory(std::move(ref));
}

const detail::PoolIdentity& identity(const detail::PoolRef& ref, const char* op) {
    throw_if_failed(detail::pool_require_valid(ref, op));
    return *detail::identity_of(ref);
}

}  // namespace

Pool Pool::create(std::string_view name, std::size_t bytes, std::uint64_t m_uid, const PoolOptions& options) {
    detail::PoolRef ref;
    throw_if_failed(detail::pool_create(ref, name, bytes, m_uid, options));
    return Pool(std::move(ref));
}

Pool Pool::attach(std::span<const std::uint8_t> serialized) {
    detail::PoolRef ref;
    throw_if_failed(detail::pool_attach(ref, serialized));
    return Pool(std::move(ref));
}

Pool Pool::attach_base64(std::string_view base64) {
    detail::PoolRef ref;
    throw_if_failed(detail::pool_attach_base64(ref, base64));
    return Pool(std::move(ref));
}

Pool Pool::attach_from_env(const char* var) {
    detail::PoolRef ref;
    throw_if_failed(detail::pool_attach_env(ref, var));
    return Pool(std::move(ref));
}

Pool Pool::attach_default() {
    detail::PoolRef ref;
    throw_if_failed(detail::pool_attach_default(ref));
    return Pool(std::move(ref));
}

Pool Pool::create_process_local(std::string_view name, std::size_t bytes, std::uint64_t m_uid,
                                const PoolOptions& options) {
    detail::PoolRef ref;
    throw_if_failed(detail::pool_create_process_local(ref, name, bytes, m_uid, options));
    return Pool(std::move(ref));
}

void Pool::register_process_local() const { throw_if_failed(detail::pool_register_process_local(ref_)); }
void Pool::deregister_process_local() const { throw_if_failed(detail::pool_deregister_process_local(ref_)); }
bool Pool::process_local() const { return attributes().process_local; }
bool Pool::owner_alive() const { return attributes().owner_alive; }

Pool Pool::attach_local(std::string_view name) {
    detail::PoolRef ref;
    throw_if_failed(detail::pool_attach_local(ref, name));
    return Pool(std::move(ref));
}

std::vector<std::string> Pool::list_local() {
    std::vector<std::string> names;
    throw_if_failed(detail::pool_list_local(names));
    return names;
}

void Pool::force_remove(std::string_view name) { throw_if_failed(detail::pool_force_remove(name)); }

std::string Pool::local_shm_name(std::string_view name) { return detail::pool_shm_name(name); }

Pool::~Pool() = default;

Pool Pool::clone() const {
    detail::PoolRef ref;
    throw_if_failed(detail::pool_clone(ref, ref_));
    return Pool(std::move(ref));
}

void Pool::detach() noexcept { ref_ = detail::PoolRef{}; }

void Pool::destroy() { throw_if_failed(detail::pool_destroy(ref_)); }

bool Pool::is_local() const {
    identity(ref_, "is_local");
    return detail::pool_is_local(ref_);
}
std::string Pool::name() const { return identity(ref_, "name").name; }
std::uint64_t Pool::m_uid() const { return identity(ref_, "muid").m_uid; }
std::uint64_t Pool::hostid() const { return identity(ref_, "get_hostid").hostid; }
std::uint64_t Pool::rt_uid() const { return identity(ref_, "get_rt_uid").rt_uid; }

std::vector<std::uint8_t> Pool::serialize() const {
    std::vector<std::uint8_t> out;
    throw_if_failed(detail::pool_serialize(ref_, out));
    return out;
}

std::string Pool::serialize_base64() const { return detail::base64_encode(serialize()); }

std::string Pool::serialize_base64_without_secret() const {
    std::vector<std::uint8_t> out;
    throw_if_failed(detail::pool_serialize(ref_, out, false));
    return detail::base64_encode(out);
}

Memory Pool::alloc(std::size_t bytes, std::uint64_t type) const {
    detail::MemoryRef ref;
    throw_if_failed(detail::mem_alloc_inline(ref, ref_, bytes, type, false, nullptr));
    return holding_pool(std::move(ref), ref_);
}

Memory Pool::alloc_blocking(std::size_t bytes, std::uint64_t type, const timespec* timeout) const {
    detail::MemoryRef ref;
    throw_if_failed(detail::mem_alloc(ref, ref_, bytes, type, true, timeout));
    return holding_pool(std::move(ref), ref_);
}

Memory Pool::from_id(std::uint64_t id, std::uint64_t offset, std::optional<std::size_t> length) const {
    detail::MemoryRef ref;
    std::uint64_t len = length.value_or(0);
    throw_if_failed(detail::mem_from_id(ref, ref_, id, offset, length ? &len : nullptr));
    return holding_pool(std::move(ref), ref_);
}

bool Pool::allocation_exists(std::uint64_t id) const {
    bool live = false;
    throw_if_failed(detail::pool_allocation_exists(ref_, "allocation_exists", id, live));
    return live;
}

std::vector<AllocationInfo> Pool::allocations(std::optional<std::uint64_t> type) const {
    std::vector<AllocationInfo> out;
    throw_if_failed(detail::pool_allocations(ref_, "get_allocations", type, out));
    return out;
}

PoolAttributes Pool::attributes() const {
    PoolAttributes out;
    throw_if_failed(detail::pool_attributes(ref_, "get_attr", out));
    return out;
}

std::vector<FreeBlockCount> Pool::free_blocks() const {
    std::vector<FreeBlockCount> out;
    throw_if_failed(detail::pool_free_blocks(ref_, "get_free_blocks", out));
    return out;
}

CheckReport Pool::check() const {
    CheckReport out;
    throw_if_failed(detail::pool_check(ref_, "check", out));
    return out;
}

void* Pool::base_pointer() const {
    void* base = nullptr;
    std::uint64_t bytes = 0;
    throw_if_failed(detail::pool_heap(ref_, "get_pointer", &base, bytes));
    return base;
}

std::size_t Pool::heap_bytes() const { return identity(ref_, "get_size").heap_bytes; }

}  // namespace dragonmem
