//! Syscall-site patching, the tracer's half (rr's "monkeypatcher"; the
//! protocol is in `rrpipe_syscallbuf`, the library's half in
//! `preload/src/patch.rs`).
//!
//! A program's syscalls that libc makes from inside itself pass no
//! wrapper of the preload library, so each costs two ptrace stops. When
//! one of the calls the library's hook handles ([`PATCHABLE`]) returns
//! from a `syscall` instruction that libc follows with its usual error
//! check, the tracer moves that check into a stub in the library's patch
//! area, preceded by a call of the hook, and overwrites the instruction
//! and the check with a jump to the stub. The next calls from that site
//! are buffered like the wrappers'.
//!
//! Record patches at the syscall's exit, only while no other task shares
//! the address space: another thread could be inside the bytes being
//! replaced (in a syscall from the same site, it returns to the middle of
//! the new jump). The task itself resumes at the displaced check in the
//! stub. The syscall's event carries `flags::PATCHED`, and replay makes
//! the very same writes at that event: same memory, same slot.

use std::io;

use rrpipe_syscallbuf as abi;

use crate::ptrace::Task;

/// The syscalls the library's hook runs as their wrappers do (the
/// contract's list): a site that makes another stays as it is.
pub use abi::PATCHABLE;

/// What glibc puts after its inline `syscall` instructions:
/// `cmp $-4096, %rax` and its 32-bit form. The stub executes it in the
/// site's place (the flags it sets decide the error branch after it).
const CHECKS: [&[u8]; 2] = [
    &[0x48, 0x3d, 0x00, 0xf0, 0xff, 0xff],
    &[0x3d, 0x00, 0xf0, 0xff, 0xff],
];

/// The library's patch area and hook trampoline, as its
/// `register_buffer` named them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatchArea {
    pub start: u64,
    pub len: u64,
    pub trampoline: u64,
}

impl PatchArea {
    /// From the arguments of a `register_buffer` call; `None` when the
    /// library has no patch area (or names one too small for a slot).
    pub fn from_register_args(args: &[u64; 6]) -> Option<PatchArea> {
        let (start, len, trampoline) = (args[2], args[3], args[4]);
        (start != 0
            && trampoline != 0
            && len >= (abi::PATCH_HEADER_SIZE + abi::PATCH_SLOT_SIZE) as u64)
            .then_some(PatchArea {
                start,
                len,
                trampoline,
            })
    }
}

/// A patchable syscall site: its `syscall` instruction's address and the
/// check after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Site {
    pub at: u64,
    check: &'static [u8],
}

impl Site {
    /// The site of the syscall a task stopped after (`rip` just past the
    /// instruction), if it has the shape the stub replaces.
    pub fn before(task: &Task, rip: u64) -> Option<Site> {
        let at = rip.checked_sub(2)?;
        let bytes = task.read_mem(at, 8).ok()?;
        if bytes.get(..2) != Some(&[0x0f, 0x05][..]) {
            return None;
        }
        CHECKS
            .iter()
            .find(|check| bytes.get(2..2 + check.len()) == Some(check))
            .map(|check| Site { at, check })
    }

    /// Bytes the jump overwrites: the instruction and the check.
    fn len(&self) -> u64 {
        2 + self.check.len() as u64
    }
}

/// Writes `site`'s stub into the next free slot of `area` and the jump to
/// it over the site; returns where a task stopped just after the site's
/// `syscall` resumes: the displaced check in the stub. `Ok(None)`: the
/// area is full, or too far from the site for a 32-bit jump; nothing was
/// written.
pub fn apply(task: &Task, area: &PatchArea, site: &Site) -> io::Result<Option<u64>> {
    let word = task.read_mem(area.start, 8)?;
    let used = u64::from_le_bytes(word[..8].try_into().expect("8 bytes"));
    let slots = (area.len - abi::PATCH_HEADER_SIZE as u64) / abi::PATCH_SLOT_SIZE as u64;
    if used >= slots {
        return Ok(None);
    }
    let slot = area.start + abi::PATCH_HEADER_SIZE as u64 + used * abi::PATCH_SLOT_SIZE as u64;
    let Some((stub, resume)) = stub(slot, area.trampoline, site) else {
        return Ok(None);
    };
    let Some(to_stub) = rel32(site.at + 5, slot) else {
        return Ok(None);
    };
    let mut jump = vec![0xe9];
    jump.extend_from_slice(&to_stub);
    jump.extend_from_slice(nop(site.len() - 5));
    task.write_mem(slot, &stub)?;
    task.write_mem(site.at, &jump)?;
    task.write_mem(area.start, &(used + 1).to_le_bytes())?;
    Ok(Some(resume))
}

/// The stub at `slot` for `site`, and the address of its displaced check:
/// step over the red zone, call the trampoline, step back, the check, jump
/// back after the site.
fn stub(slot: u64, trampoline: u64, site: &Site) -> Option<(Vec<u8>, u64)> {
    let mut code = vec![0x48, 0x8d, 0x64, 0x24, 0x80]; // lea rsp, [rsp - 128]
    code.push(0xe8); // call trampoline
    code.extend_from_slice(&rel32(slot + code.len() as u64 + 4, trampoline)?);
    code.extend_from_slice(&[0x48, 0x8d, 0xa4, 0x24, 0x80, 0x00, 0x00, 0x00]); // lea rsp, [rsp + 128]
    let resume = slot + code.len() as u64;
    code.extend_from_slice(site.check);
    code.push(0xe9); // jmp back
    code.extend_from_slice(&rel32(slot + code.len() as u64 + 4, site.at + site.len())?);
    if code.len() > abi::PATCH_SLOT_SIZE {
        return None;
    }
    code.resize(abi::PATCH_SLOT_SIZE, 0xcc);
    Some((code, resume))
}

/// The 32-bit displacement from `next` (the address after the jump or
/// call) to `target`, if it fits.
fn rel32(next: u64, target: u64) -> Option<[u8; 4]> {
    let d = target.wrapping_sub(next) as i64;
    i32::try_from(d).ok().map(|d| d.to_le_bytes())
}

/// A no-op of `len` bytes (the rest of the overwritten site).
fn nop(len: u64) -> &'static [u8] {
    match len {
        1 => &[0x90],
        2 => &[0x66, 0x90],
        3 => &[0x0f, 0x1f, 0x00],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(at: u64, check: &'static [u8]) -> Site {
        Site { at, check }
    }

    #[test]
    fn a_stub_calls_the_trampoline_then_does_the_check_and_jumps_back() {
        let slot = 0x7fff_f000_0040;
        let trampoline = 0x7fff_f000_1000;
        let s = site(0x7fff_e000_0000, CHECKS[0]);
        let (code, resume) = stub(slot, trampoline, &s).unwrap();
        assert_eq!(code.len(), abi::PATCH_SLOT_SIZE);
        assert_eq!(&code[..5], &[0x48, 0x8d, 0x64, 0x24, 0x80]);
        assert_eq!(code[5], 0xe8);
        let call = i32::from_le_bytes(code[6..10].try_into().unwrap()) as i64;
        assert_eq!((slot as i64 + 10 + call) as u64, trampoline);
        assert_eq!(resume, slot + 18);
        assert_eq!(&code[18..24], CHECKS[0]);
        assert_eq!(code[24], 0xe9);
        let back = i32::from_le_bytes(code[25..29].try_into().unwrap()) as i64;
        assert_eq!((slot as i64 + 29 + back) as u64, s.at + 8);
        assert!(code[29..].iter().all(|&b| b == 0xcc));
    }

    #[test]
    fn targets_beyond_32_bits_are_refused() {
        let s = site(0x1000, CHECKS[1]);
        assert!(stub(0x7fff_0000_0000, 0x7fff_0000_1000, &s).is_none());
        assert_eq!(
            rel32(0x1000, 0x1000 + 0x7fff_ffff),
            Some([0xff, 0xff, 0xff, 0x7f])
        );
        assert_eq!(rel32(0x1000, 0x1000 + 0x8000_0000), None);
    }

    #[test]
    fn the_jump_and_its_padding_cover_the_site() {
        for check in CHECKS {
            let s = site(0x1000, check);
            assert_eq!(5 + nop(s.len() - 5).len() as u64, s.len());
        }
    }

    #[test]
    fn the_contract_lists_the_calls_the_hook_runs() {
        assert_eq!(
            PATCHABLE,
            [
                libc::SYS_read,
                libc::SYS_write,
                libc::SYS_pread64,
                libc::SYS_openat,
                libc::SYS_close,
                libc::SYS_newfstatat,
                libc::SYS_lseek,
                libc::SYS_getdents64,
            ]
        );
    }

    #[test]
    fn register_arguments_name_an_area_or_none() {
        assert_eq!(PatchArea::from_register_args(&[1, 2, 0, 0, 0, 0]), None);
        let area = PatchArea::from_register_args(&[1, 2, 0x5000, 8192, 0x9000, 0]).unwrap();
        assert_eq!(
            (area.start, area.len, area.trampoline),
            (0x5000, 8192, 0x9000)
        );
        assert_eq!(
            PatchArea::from_register_args(&[1, 2, 0x5000, 64, 0x9000, 0]),
            None
        );
    }
}
