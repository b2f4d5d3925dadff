#include <unistd.h>

#include "symbols/symbol_writer.h"

namespace etwtrace::symbols {

void SymbolPublisher::add_writer(std::unique_ptr<SymbolWriter> writer) {
    std::lock_guard<std::mutex> guard(mutex_);
    writers_.push_back(std::move(writer));
}

void SymbolPublisher::set_source(SymbolSource source) {
    std::lock_guard<std::mutex> guard(mutex_);
    source_ = std::move(source);
}

bool SymbolPublisher::open(std::string* error) {
    std::lock_guard<std::mutex> guard(mutex_);
    if (open_pid_ == getpid()) {
        return true;
    }
    if (open_pid_ != 0) {
        reopen_locked();
        return open_pid_ != 0;
    }
    return open_locked(error);
}

bool SymbolPublisher::open_locked(std::string* error) {
    pid_t pid = getpid();
    for (auto& writer : writers_) {
        if (!writer->open(pid, error)) {
            for (auto& other : writers_) {
                other->close();
            }
            return false;
        }
    }
    open_pid_ = pid;
    return true;
}

void SymbolPublisher::reopen_locked() {
    for (auto& writer : writers_) {
        writer->close();  // the parent's file: released, never written
    }
    open_pid_ = 0;
    std::string error;
    if (!open_locked(&error)) {
        return;  // the child runs on without symbols rather than failing
    }
    if (source_) {
        source_([this](const CodeSymbol& symbol) {
            for (auto& writer : writers_) {
                writer->write(symbol);
            }
        });
    }
}

void SymbolPublisher::reopen_after_fork() {
    std::lock_guard<std::mutex> guard(mutex_);
    if (open_pid_ != 0 && open_pid_ != getpid()) {
        reopen_locked();
    }
}

void SymbolPublisher::publish(const CodeSymbol& symbol) {
    std::lock_guard<std::mutex> guard(mutex_);
    if (open_pid_ != 0 && open_pid_ != getpid()) {
        reopen_locked();
    }
    if (open_pid_ != 0) {
        for (auto& writer : writers_) {
            writer->write(symbol);
        }
    }
}

std::vector<std::string> SymbolPublisher::paths() const {
    std::lock_guard<std::mutex> guard(mutex_);
    std::vector<std::string> result;
    for (const auto& writer : writers_) {
        result.push_back(writer->path());
    }
    return result;
}

}  // namespace etwtrace::symbols
