// The streaming JSON writer: objects and arrays opened and closed as the document is
// produced, scalars and small objects dumped by nlohmann, allocations formatted directly
// (a million of them must print in well under a second).
#include "json_stream.hpp"

#include "common.hpp"

#include <fmt/format.h>

namespace dragonmem::cli {
namespace {

// Written out whenever this much is buffered: bounded memory, few system calls.
constexpr std::size_t flush_bytes = 1 << 20;

std::string dumped(const json& value, int indent) {
    return value.dump(indent, ' ', false, json::error_handler_t::replace);
}

}  // namespace

void JsonStream::before_item(std::string_view key) {
    if (layout_ == Layout::lines || levels_.empty()) return;
    Level& level = levels_.back();
    if (!level.empty) buffer_ += ',';
    level.empty = false;
    if (layout_ == Layout::pretty) {
        buffer_ += '\n';
        buffer_.append(2 * levels_.size(), ' ');
    }
    if (!level.array) {
        buffer_ += dumped(json(key), -1);
        buffer_ += layout_ == Layout::pretty ? ": " : ":";
    }
}

void JsonStream::begin_object(std::string_view key) {
    before_item(key);
    if (layout_ != Layout::lines) buffer_ += '{';
    levels_.push_back(Level{false, true});
}

void JsonStream::begin_array(std::string_view key) {
    before_item(key);
    if (layout_ != Layout::lines) buffer_ += '[';
    levels_.push_back(Level{true, true});
}

// Closes the innermost object or array: its bracket goes on a line of its own when pretty
// and it holds anything. The lines layout prints no brackets (an object a line): false.
bool JsonStream::close_level(char bracket) {
    const Level level = levels_.back();
    levels_.pop_back();
    if (layout_ == Layout::lines) return false;
    if (layout_ == Layout::pretty && !level.empty) {
        buffer_ += '\n';
        buffer_.append(2 * levels_.size(), ' ');
    }
    buffer_ += bracket;
    return true;
}

void JsonStream::end_object() {
    if (close_level('}') && levels_.empty()) buffer_ += '\n';
}

void JsonStream::end_array() { close_level(']'); }

void JsonStream::write_value(const json& value) {
    if (layout_ != Layout::pretty) {
        buffer_ += dumped(value, -1);
        return;
    }
    // Indented as nlohmann indents, shifted to this depth.
    const std::string text = dumped(value, 2);
    const std::string indent(2 * levels_.size(), ' ');
    for (char c : text) {
        buffer_ += c;
        if (c == '\n') buffer_ += indent;
    }
}

void JsonStream::member(std::string_view key, const json& value) {
    if (layout_ == Layout::lines) return;
    before_item(key);
    write_value(value);
    flush_if_full();
}

void JsonStream::element(const json& value) {
    if (layout_ == Layout::lines) {
        buffer_ += dumped(value, -1);
        buffer_ += '\n';
    } else {
        before_item({});
        write_value(value);
    }
    flush_if_full();
}

void JsonStream::line(const json& value) {
    if (layout_ != Layout::lines) return;
    buffer_ += dumped(value, -1);
    buffer_ += '\n';
}

void JsonStream::allocation(const AllocationInfo& info, const std::optional<std::string>& serialized) {
    if (layout_ == Layout::pretty) {
        element(allocation_json(info, serialized));
        return;
    }
    // The allocation object of output.cpp, formatted without a DOM. Every value is a
    // number or a fixed name, and base64 needs no escaping.
    if (layout_ == Layout::compact) before_item({});
    const auto name = type_name(info.type);
    fmt::format_to(std::back_inserter(buffer_),
                   R"({{"id":"{}","type":{},"type_name":{}{}{},"offset":{},"size":{},"block_size":{})", info.id,
                   info.type, name ? "\"" : "", name ? *name : "null", name ? "\"" : "", info.offset, info.size,
                   info.block_bytes);
    if (serialized) fmt::format_to(std::back_inserter(buffer_), R"(,"serialized":"{}")", *serialized);
    buffer_ += '}';
    if (layout_ == Layout::lines) buffer_ += '\n';
    flush_if_full();
}

void JsonStream::flush_if_full() {
    if (buffer_.size() < flush_bytes) return;
    write_text(buffer_);
    buffer_.clear();
}

void JsonStream::finish() {
    write_text(buffer_);
    buffer_.clear();
    flush_stdout();
}

}  // namespace dragonmem::cli
