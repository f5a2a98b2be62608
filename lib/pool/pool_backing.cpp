// Backing heap chunks and manifest steps before their first touch (see pool_backing.hpp).
#include "pool/pool_backing.hpp"

#include "os/errno_text.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace dragonmem::detail {

namespace {
constexpr std::uint32_t k_page_log2 = 12;
static_assert(k_page_bytes == 1u << k_page_log2);
// At most 2^30 map bits: 128 MiB of map, 32768 pages, one directory page.
constexpr std::uint32_t k_max_map_bits_log2 = 30;
static_assert((std::uint64_t{1} << k_max_map_bits_log2) / k_bits_per_page <= k_bits_per_page);
}  // namespace

std::uint32_t heap_chunk_shift_for(std::uint32_t max_order) noexcept {
    return max_order > k_page_log2 + k_max_map_bits_log2 ? max_order - k_max_map_bits_log2 : k_page_log2;
}

std::uint64_t backing_map_bytes_for(std::uint32_t max_order) noexcept {
    std::uint32_t shift = heap_chunk_shift_for(max_order);
    std::uint64_t chunks = max_order > shift ? std::uint64_t{1} << (max_order - shift) : 1;
    std::uint64_t bytes = (chunks + 7) / 8;
    return (bytes + k_page_bytes - 1) / k_page_bytes * k_page_bytes;
}

std::uint64_t initial_manifest_backed(std::uint64_t capacity) noexcept {
    return std::min<std::uint64_t>(capacity, k_page_bytes / sizeof(ManifestRecord));
}

bool Backing::back_range(std::uint64_t object_offset, std::uint64_t bytes, const char* part) noexcept {
    int err = shm_back_mapped(mapping_, shm_name_, object_, object_offset, bytes);
    if (err == 0) return true;
    failure_ = Failure{err, object_offset, bytes, part};
    return false;
}

bool Backing::back_heap_chunk(std::uint64_t offset) noexcept {
    if (offset >= heap_bytes_) return false;
    const std::uint64_t chunk = offset >> chunk_shift_;
    // The chunk and the next ones (not in a GPU pool, pool_backing.hpp), in one system
    // call: each call costs more than the page it backs (in a VM, about a microsecond),
    // and it is made under the pool lock, so a workload spreading over fresh heap paid it
    // once per page while the other threads waited. The chunks after it are nearly
    // always touched soon (the blocks cut beside it). The kernel backs a range in order,
    // so where /dev/shm runs out, the chunk needed is the first to get memory; the call
    // then fails and the chunk alone is retried.
    const std::uint64_t chunks = ((heap_bytes_ - 1) >> chunk_shift_) + 1;
    const std::uint64_t map_page_end = (chunk / k_bits_per_page + 1) * k_bits_per_page;
    const std::uint64_t count = std::min({chunks_per_call_, chunks - chunk, map_page_end - chunk});
    if (count > 1) {
        const Failure earlier = failure_;  // one recorded earlier in the same locked call survives
        if (back_heap_chunks(chunk, count)) return true;
        failure_ = earlier;
    }
    return back_heap_chunks(chunk, 1);
}

bool Backing::back_heap_chunks(std::uint64_t first, std::uint64_t count) noexcept {
    const std::uint64_t map_page = first / k_bits_per_page;  // holds every bit of the run
    // The map's page first: its bits are written below. Each bit is set only after the
    // kernel backed what it stands for; killed in between (or between two of the bits
    // set at the end), a chunk whose bit is clear is backed again by its next toucher.
    if (!bit(dir_, map_page)) {
        if (!back_range(header_->backing_map_offset + map_page * k_page_bytes, k_page_bytes, "backing map"))
            return false;
        set_bit(dir_, map_page);
    }
    const std::uint64_t start = first << chunk_shift_;
    const std::uint64_t bytes = std::min(count << chunk_shift_, heap_bytes_ - start);
    // The free-map page(s) with the bits of every granule these chunks overlap: the heap
    // reads and writes them only once a chunk's bit below says it is backed.
    const std::uint64_t first_bit = start >> granule_order_;
    const std::uint64_t last_bit = (start + bytes - 1) >> granule_order_;
    const std::uint64_t map_from = first_bit / 8 / k_page_bytes * k_page_bytes;
    const std::uint64_t map_to = (last_bit / 8 + 1 + k_page_bytes - 1) / k_page_bytes * k_page_bytes;
    const bool map_known = free_map_page_backed(first) && free_map_page_backed(first + count - 1);
    if (!map_known && !back_range(free_map_offset_ + map_from, map_to - map_from, "free map")) return false;
    if (!back_range(header_->heap_offset + start, bytes, "heap, for free-block headers,")) return false;
    for (std::uint64_t c = first; c < first + count; ++c) set_bit(map_ + map_page, c % k_bits_per_page);
    return true;
}

bool Backing::free_map_page_backed(std::uint64_t chunk) const noexcept {
    // Free-map bits per chunk (2^bits_log2), and chunks per page of the free map. Only
    // for chunks whose bits share a page with at least 64 other chunks' (4 KiB chunks of
    // 64 B granules: 512 chunks, 2 MiB of heap, per page); otherwise nothing is skipped.
    if (chunk_shift_ < granule_order_) return false;
    const std::uint32_t bits_log2 = chunk_shift_ - granule_order_;
    if (bits_log2 + 6 > k_page_log2 + 3) return false;
    const std::uint64_t per_page = std::uint64_t{1} << (k_page_log2 + 3 - bits_log2);
    const std::uint64_t first = chunk & ~(per_page - 1);  // per_page divides k_bits_per_page: one map page
    const std::uint64_t map_page = first / k_bits_per_page;
    if (!bit(dir_, map_page)) return false;
    // A chunk's bit is set only after its free-map page was backed (back_heap_chunks), and
    // memory is never given back: any chunk of the same free-map page with its bit set
    // proves the page has memory. One system call saved per new chunk, but the first.
    const BitPage& page = map_[map_page];
    for (std::uint64_t w = (first % k_bits_per_page) / 64, end = w + per_page / 64; w < end; ++w)
        if (page.words[w].load(std::memory_order_acquire) != 0) return true;
    return false;
}

bool Backing::back_records(std::uint64_t count) noexcept {
    std::uint64_t backed = records_backed();
    if (count <= backed) return true;
    if (count > capacity_) return false;  // callers never ask past the manifest
    constexpr std::uint64_t step = k_manifest_backing_step_bytes / sizeof(ManifestRecord);
    std::uint64_t target = std::min(capacity_, (count + step - 1) / step * step);
    std::uint64_t from = header_->manifest_offset + backed * sizeof(ManifestRecord);
    std::uint64_t to = header_->manifest_offset + target * sizeof(ManifestRecord);
    if (!back_range(from, to - from, "manifest records")) return false;
    // Killed before this store: backed, not recorded; the next taker backs it again.
    header_->manifest_backed.store(target, std::memory_order_release);
    return true;
}

std::string Backing::describe_failure() const {
    return fmt::format("{} could not back {} B of the pool's {} at object offset {}: {} (errno {}); {}", k_shm_dir,
                       failure_.bytes, failure_.part, failure_.offset, errno_text(failure_.err), failure_.err,
                       shm_space_text());
}

}  // namespace dragonmem::detail
