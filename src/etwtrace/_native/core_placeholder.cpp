// Keeps etwtrace_core non-empty while its parts are being written.
namespace etwtrace { int core_placeholder = 0; }
