//! Syscall buffering (issue 5): tests are being written.
