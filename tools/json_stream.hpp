// A JSON writer that streams: the document goes to stdout as it is produced, so a list
// of a million allocations never exists whole in memory (no DOM for the document, only
// for its small parts). Compact (one line), indented (--pretty), or JSON Lines
// (--jsonl: each element of the document's list on its own line, nothing around them).
#pragma once

#include "output.hpp"

#include <dragonmem/dragonmem.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dragonmem::cli {

enum class Layout { compact, pretty, lines };

class JsonStream {
public:
    explicit JsonStream(Layout layout) : layout_(layout) {}
    JsonStream(const JsonStream&) = delete;
    JsonStream& operator=(const JsonStream&) = delete;

    Layout layout() const noexcept { return layout_; }

    // Objects and arrays; `key` names the member in the enclosing object. In the lines
    // layout only the elements of arrays are written, one per line (objects around them
    // and their other members are left out unless written with line()).
    void begin_object(std::string_view key = {});
    void end_object();
    void begin_array(std::string_view key = {});
    void end_array();
    void member(std::string_view key, const json& value);
    // An element of the current array (one line of its own in the lines layout).
    void element(const json& value);
    void allocation(const AllocationInfo& info, const std::optional<std::string>& serialized);
    // The lines layout: a whole object on a line of its own (the pool of a dump).
    void line(const json& value);

    // Writes what is buffered and flushes stdout; throws dragonmem::Error when stdout
    // cannot take it (the caller then undoes what the command changed).
    void finish();

private:
    void before_item(std::string_view key);
    void write_value(const json& value);
    void flush_if_full();
    bool close_level(char bracket);

    struct Level {
        bool array = false;
        bool empty = true;
    };
    Layout layout_;
    std::vector<Level> levels_;
    std::string buffer_;
};

}  // namespace dragonmem::cli
