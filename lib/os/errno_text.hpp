// The text of an errno value for error messages, safe to call from any thread.
#pragma once

namespace dragonmem::detail {

// strerror(err) without its shared buffer: POSIX allows strerror to return a buffer that
// a call in another thread overwrites, and the library reports errors from every thread.
// The text is valid until this thread's next call.
const char* errno_text(int err) noexcept;

}  // namespace dragonmem::detail
