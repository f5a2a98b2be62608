// Create's size and option checks, the layout they give, and the header check open()
// makes before it maps anything (pool_geometry.hpp). Pure: no I/O.
#include "pool/pool_geometry.hpp"

#include "os/error.hpp"
#include "os/hugepage_file.hpp"  // k_huge_page_bytes (a constant: no I/O here)
#include "pool/tlsf_heap.hpp"
#include "pool/manifest.hpp"
#include "pool/pool_backing.hpp"
#include "pool/pool_name.hpp"

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstring>
#include <type_traits>

namespace dragonmem::detail {

namespace {

std::uint64_t round_up(std::uint64_t value, std::uint64_t multiple) {
    return (value + multiple - 1) / multiple * multiple;
}

std::uint32_t bits_for_slots(std::uint64_t capacity) {
    // Enough bits to hold slot numbers 0..capacity-1 (at least 1).
    std::uint32_t bits = static_cast<std::uint32_t>(std::bit_width(capacity - 1));
    return bits == 0 ? 1 : bits;
}

}  // namespace

dragonError_t check_size_and_type(std::string_view name, std::size_t bytes, const PoolOptions& options) {
    if (bytes == 0) return failf(DRAGON_INVALID_ARGUMENT, "pool '{}': size 0 bytes; a pool needs a size", name);
    if (options.mem_type != DRAGON_MEMORY_TYPE_SHM && options.mem_type != DRAGON_MEMORY_TYPE_HUGEPAGE &&
        options.mem_type != DRAGON_MEMORY_TYPE_GPU)
        return failf(DRAGON_MEMORY_ILLEGAL_MEMTYPE,
                     "pool '{}': memory type {} is not supported; DRAGON_MEMORY_TYPE_SHM (0), "
                     "DRAGON_MEMORY_TYPE_HUGEPAGE (1) and DRAGON_MEMORY_TYPE_GPU (2) are",
                     name, static_cast<int>(options.mem_type));
    if (options.mem_type == DRAGON_MEMORY_TYPE_GPU && options.reserve)
        return failf(DRAGON_INVALID_ARGUMENT,
                     "pool '{}': reserve backs a pool's host memory; a GPU pool's data is device memory, given in "
                     "full at creation (leave reserve off)",
                     name);
    return DRAGON_SUCCESS;
}

dragonError_t plan_geometry(std::string_view name, std::size_t bytes, const PoolOptions& options, PoolGeometry& out) {
    if (dragonError_t rc = check_size_and_type(name, bytes, options)) return rc;
    const bool huge = options.mem_type == DRAGON_MEMORY_TYPE_HUGEPAGE;
    // A hugepage heap is whole huge pages: at least one.
    if (huge && bytes < k_huge_page_bytes) bytes = k_huge_page_bytes;
    if ((options.mode & ~0777u) != 0)
        return failf(DRAGON_INVALID_ARGUMENT, "pool '{}': mode {:04o} invalid; give permission bits only (at most 0777)",
                     name, options.mode);
    // The lock kind as the integer a C caller stored: loading an out-of-range value as the
    // enum type would be undefined behaviour.
    std::underlying_type_t<dragonLockKind_t> lock_raw;
    std::memcpy(&lock_raw, &options.lock_type, sizeof lock_raw);
    if (static_cast<std::uint64_t>(lock_raw) > DRAGON_LOCK_GREEDY)
        return failf(DRAGON_INVALID_LOCK_KIND, "pool '{}': lock type {} unknown", name, lock_raw);
    std::uint64_t min_block = std::max<std::uint64_t>(options.min_block_bytes, 1);
    std::uint32_t min_order = std::max<std::uint32_t>(static_cast<std::uint32_t>(std::bit_width(min_block - 1)),
                                                      k_min_block_order_floor);
    std::uint32_t max_order = bytes <= 1 ? 0 : static_cast<std::uint32_t>(std::bit_width(bytes - 1));
    if (max_order < min_order) max_order = min_order;
    if (min_order > k_max_heap_order || max_order > k_max_heap_order)
        return failf(DRAGON_INVALID_ARGUMENT, "pool '{}': size {} B or min block {} B exceeds the 2^{} B limit", name,
                     bytes, options.min_block_bytes, k_max_heap_order);
    std::uint64_t heap_bytes = std::uint64_t{1} << max_order;
    std::uint64_t min_blocks = heap_bytes >> min_order;
    if (min_blocks < 5)
        return failf(DRAGON_INVALID_ARGUMENT,
                     "pool '{}': {} B of heap hold only {} blocks of the {} B minimum block; at least 5 are needed", name,
                     heap_bytes, min_blocks, std::uint64_t{1} << min_order);
    std::uint64_t capacity = options.max_allocations != 0
                                 ? options.max_allocations
                                 : std::min<std::uint64_t>(min_blocks, k_default_max_allocations_cap);
    if (capacity < 5 || capacity > k_max_manifest_capacity)
        return failf(DRAGON_INVALID_ARGUMENT, "pool '{}': max_allocations {} out of range (5 to {})", name, capacity,
                     k_max_manifest_capacity);
    for (std::size_t n = 0; n < options.preallocs.size(); ++n)
        if (options.preallocs[n] != 0 && min_order + n > max_order)
            return failf(DRAGON_INVALID_ARGUMENT,
                         "pool '{}': preallocation index {} asks for {} B blocks, larger than the {} B heap", name, n,
                         n < 64 ? (std::uint64_t{1} << (min_order + n)) : 0, heap_bytes);

    PoolGeometry g;
    g.min_order = min_order;
    g.max_order = max_order;
    g.heap_bytes = heap_bytes;
    g.capacity = capacity;
    g.id_slot_bits = bits_for_slots(capacity);
    g.map_bytes = backing_map_bytes_for(max_order);
    g.manifest_offset = k_backing_map_offset + g.map_bytes;
    g.manifest_bytes = round_up(capacity * sizeof(ManifestRecord), k_page_bytes);
    g.free_map_offset = g.manifest_offset + g.manifest_bytes;
    g.free_map_bytes = TlsfHeap::free_map_bytes(heap_bytes, min_order);
    g.heap_offset = g.free_map_offset + g.free_map_bytes;
    g.total_bytes = g.heap_offset + heap_bytes;
    g.alignment = std::clamp<std::uint64_t>(heap_bytes, k_page_bytes, k_max_heap_alignment);
    g.chunk_shift = heap_chunk_shift_for(max_order);
    // A hugepage pool is reserved whole: its heap's huge pages and its metadata.
    g.reserve_all = options.reserve || huge;
    g.object_bytes = huge ? g.heap_offset : g.total_bytes;  // the heap is the hugetlbfs file's
    g.records_backed = g.reserve_all ? capacity : initial_manifest_backed(capacity);

    // Fit. The object is sparse, so what must fit is what users can fill: the heap, plus
    // the metadata backed now. Manifest records past the first page are backed as they
    // come into use, and the library fails an allocation cleanly (OUT_OF_SPACE) when
    // /dev/shm cannot back one. A reserved pool backs everything now, so all of it must fit.
    g.first_records_bytes = round_up(g.records_backed * sizeof(ManifestRecord), k_page_bytes);
    // Heap chunk 0 and the free-map page(s) with its bits (format() sets the first bit).
    g.first_chunk_bytes = std::min(std::uint64_t{1} << g.chunk_shift, heap_bytes);
    // The bits of every granule chunk 0 overlaps, as Backing::back_heap_chunk counts them:
    // a granule larger than the chunk (a minimum block over a page) still has its bit,
    // which format() writes.
    const std::uint64_t last_bit = (g.first_chunk_bytes - 1) >> TlsfHeap::granule_order_for(min_order);
    g.first_free_map_bytes = round_up(last_bit / 8 + 1, k_page_bytes);
    // Header, directory, process table, id blocks, heap state, the backing map's first
    // page, first records, first free-map page; and format() backs the heap's last chunk
    // (its footer) with its free-map page.
    const std::uint64_t metadata_now = k_procs_offset + k_procs_bytes + 2 * k_page_bytes + k_heap_state_bytes +
                                       g.first_records_bytes + g.first_free_map_bytes + 2 * k_page_bytes;
    // A GPU pool's heap range holds no user bytes (device_region.hpp): only its metadata counts.
    const std::uint64_t user_bytes = options.mem_type == DRAGON_MEMORY_TYPE_GPU ? 0 : heap_bytes;
    g.needed_bytes = g.reserve_all ? g.object_bytes : user_bytes + metadata_now;
    out = g;
    return DRAGON_SUCCESS;
}

void store_geometry(PoolHeader& h, const PoolGeometry& g) noexcept {
    h.layout_version = k_layout_version;
    h.header_bytes = sizeof(PoolHeader);
    h.total_bytes = g.total_bytes;
    h.manifest_offset = g.manifest_offset;
    h.manifest_capacity = g.capacity;
    h.heap_offset = g.heap_offset;
    h.heap_bytes = g.heap_bytes;
    h.min_block_order = g.min_order;
    h.max_block_order = g.max_order;
    h.id_slot_bits = g.id_slot_bits;
    h.heap_alignment = g.alignment;
    h.record_bytes = sizeof(ManifestRecord);
    h.backing_dir_offset = k_backing_dir_offset;
    h.procs_offset = k_procs_offset;
    h.procs_bytes = k_procs_bytes;
    h.backing_map_offset = k_backing_map_offset;
    h.backing_map_bytes = g.map_bytes;
    h.heap_chunk_shift = g.chunk_shift;
    h.free_map_offset = g.free_map_offset;
    h.free_map_bytes = g.free_map_bytes;
}

dragonError_t validate_header(const PoolHeader& h, std::uint64_t magic, std::uint64_t object_bytes,
                              const std::string& shm_name) {
    auto bad = [&](const std::string& why) {
        return failf(DRAGON_INVALID_ARGUMENT, "shm object '{}' is not a usable dragonmem pool: {}", shm_name, why);
    };
    // A hugepage pool's object ends where its heap (a hugetlbfs file) begins: checked as
    // if the heap were in it. The heap size is bounded first, so the sum cannot wrap.
    if (h.mem_type == DRAGON_MEMORY_TYPE_HUGEPAGE) {
        if (h.max_block_order > k_max_heap_order || h.heap_bytes != (std::uint64_t{1} << h.max_block_order))
            return bad(fmt::format("heap size {} is not 2^{}", h.heap_bytes, h.max_block_order));
        if (strnlen(h.heap_file, k_heap_file_capacity) == k_heap_file_capacity)
            return bad("its huge-page file name is not terminated");
        object_bytes += h.heap_bytes;
    }
    if (magic != k_pool_magic) return bad(fmt::format("wrong magic {:#018x}", magic));
    if (h.layout_version != k_layout_version)
        return bad(fmt::format("layout version {} (this library reads version {}; a pool made by another version of "
                               "dragonmem must be recreated)",
                               h.layout_version, k_layout_version));
    if (h.header_bytes != sizeof(PoolHeader))
        return bad(fmt::format("header size {} (expected {})", h.header_bytes, sizeof(PoolHeader)));
    if (h.record_bytes != sizeof(ManifestRecord))
        return bad(fmt::format("manifest records of {} B (this library's are {} B)", h.record_bytes,
                               sizeof(ManifestRecord)));
    if (h.mem_type > DRAGON_MEMORY_TYPE_GPU) return bad(fmt::format("memory type {}", h.mem_type));
    if ((h.mem_type == DRAGON_MEMORY_TYPE_GPU) != (h.ipc_handle_bytes == k_ipc_handle_bytes))
        return bad(fmt::format("memory type {} with a {} B IPC handle", h.mem_type, h.ipc_handle_bytes));
    if (h.total_bytes != object_bytes)
        return bad(fmt::format("header says {} bytes but the object has {}", h.total_bytes, object_bytes));
    if (h.min_block_order < k_min_block_order_floor || h.max_block_order > k_max_heap_order ||
        h.min_block_order > h.max_block_order)
        return bad(fmt::format("block orders {}..{} out of range", h.min_block_order, h.max_block_order));
    if (h.heap_bytes != (std::uint64_t{1} << h.max_block_order))
        return bad(fmt::format("heap size {} is not 2^{}", h.heap_bytes, h.max_block_order));
    if (h.manifest_capacity < 5 || h.manifest_capacity > k_max_manifest_capacity ||
        h.id_slot_bits != bits_for_slots(h.manifest_capacity))
        return bad(fmt::format("manifest capacity {} / slot bits {} inconsistent", h.manifest_capacity, h.id_slot_bits));
    if (h.backing_dir_offset != k_backing_dir_offset || h.procs_offset != k_procs_offset ||
        h.procs_bytes != k_procs_bytes || h.backing_map_offset != k_backing_map_offset ||
        h.backing_map_bytes != backing_map_bytes_for(h.max_block_order))
        return bad(fmt::format("backing directory at {}, process table at {} ({} B), backing map at {} ({} B): "
                               "expected {}, {} ({} B), {} ({} B)",
                               h.backing_dir_offset, h.procs_offset, h.procs_bytes, h.backing_map_offset,
                               h.backing_map_bytes, k_backing_dir_offset, k_procs_offset, k_procs_bytes,
                               k_backing_map_offset, backing_map_bytes_for(h.max_block_order)));
    // The regions follow each other exactly as create lays them out. No sum can wrap
    // around: every term was bounded above (backing map <= 128 MiB, capacity <= 2^32
    // records, heap <= 2^46 B, so the free map <= 2^38 B).
    const std::uint64_t manifest_bytes = round_up(h.manifest_capacity * sizeof(ManifestRecord), k_page_bytes);
    const std::uint64_t free_map_bytes = TlsfHeap::free_map_bytes(h.heap_bytes, h.min_block_order);
    if (h.manifest_offset != k_backing_map_offset + h.backing_map_bytes ||
        h.free_map_offset != h.manifest_offset + manifest_bytes || h.free_map_bytes != free_map_bytes ||
        h.heap_offset != h.free_map_offset + free_map_bytes || h.heap_offset > object_bytes ||
        h.heap_bytes != object_bytes - h.heap_offset)
        return bad(fmt::format("manifest at {}, free map at {} ({} B), heap at {}: inconsistent with {} records, a "
                               "{} B heap of {} B blocks and a {} B object (expected {}, {} ({} B), {})",
                               h.manifest_offset, h.free_map_offset, h.free_map_bytes, h.heap_offset,
                               h.manifest_capacity, h.heap_bytes, std::uint64_t{1} << h.min_block_order, object_bytes,
                               k_backing_map_offset + h.backing_map_bytes,
                               k_backing_map_offset + h.backing_map_bytes + manifest_bytes, free_map_bytes,
                               k_backing_map_offset + h.backing_map_bytes + manifest_bytes + free_map_bytes));
    // Ids stay below 2^62; a counter that reached 2^63 was damaged (failed takes past the
    // limit add one each, far from that). Read as bytes: the copy is not shared memory.
    if (const auto counter = copied_field<std::uint64_t>(reinterpret_cast<const unsigned char*>(&h),
                                                         offsetof(PoolHeader, id_counter));
        counter >= std::uint64_t{1} << 63)
        return bad(fmt::format("id counter {} is past the id space (ids stay below 2^62)", counter));
    if (h.heap_chunk_shift != heap_chunk_shift_for(h.max_block_order))
        return bad(fmt::format("heap chunk shift {} (expected {} for a 2^{} B heap)", h.heap_chunk_shift,
                               heap_chunk_shift_for(h.max_block_order), h.max_block_order));
    if (h.heap_alignment == 0 || !std::has_single_bit(h.heap_alignment) || h.heap_alignment > k_max_heap_alignment)
        return bad(fmt::format("heap alignment {} invalid", h.heap_alignment));
    std::string_view name(h.name, strnlen(h.name, k_name_capacity));
    if (name.size() > k_max_name_len || shm_name_for(name) != shm_name)
        return bad("the name stored in the header does not match the object's name");
    return DRAGON_SUCCESS;
}

}  // namespace dragonmem::detail
