//! Placeholder: written by the syscall-table helper.
pub fn format_call(nr: i64, args: &[u64; 6], _inputs: &[(u64, Vec<u8>)], result: i64) -> String { format!("{nr}({args:?}) = {result}") }
