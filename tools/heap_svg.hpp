// dump --svg: a picture of a pool's heap along its address space. The heap is drawn as
// k_svg_rows rows of k_svg_width pixels, left to right and top to bottom from offset 0;
// each allocation's block, and each run of neighbouring free bytes, is one rectangle per
// row it crosses (used blocks outlined, so that their boundaries show), carrying its offset, bytes and kind as data-*
// attributes (what the tests read back). A legend gives each kind's colour and bytes,
// and a caption the pool's figures.
//
// "Free" is every byte no live allocation's block holds (free-listed blocks and blocks
// parked in thread caches alike: both are free to callers). Above k_svg_max_runs runs
// (a million scattered allocations) the picture is drawn per pixel instead: each pixel
// takes the kind holding most of its bytes, neighbouring pixels of one kind merge, and
// `exact` says so.
#pragma once

#include "output.hpp"

#include <dragonmem/dragonmem.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace dragonmem::cli {

inline constexpr int k_svg_width = 1024;
inline constexpr int k_svg_rows = 32;
inline constexpr std::size_t k_svg_max_runs = 65536;

// A stretch of the heap [offset, offset + bytes) of one kind.
struct HeapRun {
    std::uint64_t offset = 0;
    std::uint64_t bytes = 0;
    bool free = true;
    std::uint64_t type = 0;  // when !free
};

// A live allocation's block: 24 B each, the one list kept whole (a million of them is 24 MB;
// the runs between them are made on the fly, never stored).
struct UsedBlock {
    std::uint64_t offset = 0;
    std::uint64_t bytes = 0;
    std::uint64_t type = 0;
};

struct HeapPicture {
    std::string svg;
    std::size_t rectangles = 0;
    bool exact = true;           // false: drawn per pixel (too many runs)
    double bytes_per_pixel = 0;
};

// `pool`'s live allocations' blocks, by offset (a block listed twice across pages, moved
// meanwhile, is kept once).
std::vector<UsedBlock> used_blocks(const dragonmem::Pool& pool);
// The picture of a heap of `heap_bytes` holding `used` (by offset; the rest is free);
// `figures` is the pool object (pool_json) plus largest_free_block and fragmentation,
// shown in the caption.
HeapPicture draw_heap(const std::vector<UsedBlock>& used, std::uint64_t heap_bytes, const json& figures);

}  // namespace dragonmem::cli
