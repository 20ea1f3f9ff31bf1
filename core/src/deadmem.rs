//! Memory that is not program state: what digests and snapshots leave out.
//!
//! Below a stack pointer's red zone lies dead stack, where signal frames
//! and replay's own scribbles (trampolines, the frames of handlers that
//! returned) may differ between record and replay. The same holds for a
//! whole alternate signal stack while its task is not running on it: a
//! handler that ran there left its frame, and whatever lazy binding saved
//! there with XSAVE (whose output depends on context switches where cpuid
//! cannot be trapped). Both sessions track the same stack pointers and
//! alternate stacks from the same events, so both leave out the same bytes.

use rrpipe_plugin_api::Mapping;

/// The dead parts of an address space.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeadMemory {
    /// Stack pointers on regular stacks: the stack mapping holding one is
    /// dead from its start up to the red zone.
    pub below: Vec<u64>,
    /// Dead address ranges `[start, end)`: alternate stacks not in use, and
    /// the part of one in use below its red zone.
    pub ranges: Vec<(u64, u64)>,
    /// Mappings that are rrpipe's, not the program's (the syscall buffers
    /// with their stacks): dead too, and left out of the mappings a core
    /// dump lists. How the kernel lays them out differs between record and
    /// replay (shared with rrpipe in record, or merged with a neighbour).
    pub rrpipe: Vec<(u64, u64)>,
}

const RED_ZONE: u64 = 128;

impl DeadMemory {
    /// From each task's stack pointer and alternate stack, if any.
    pub fn of(tasks: impl IntoIterator<Item = (u64, Option<(u64, u64)>)>) -> DeadMemory {
        let mut dead = DeadMemory::default();
        for (sp, altstack) in tasks {
            match altstack {
                Some((start, end)) if (start..end).contains(&sp) => {
                    dead.ranges
                        .push((start, sp.saturating_sub(RED_ZONE).max(start)));
                }
                Some(range) => {
                    dead.ranges.push(range);
                    dead.below.push(sp);
                }
                None => dead.below.push(sp),
            }
        }
        dead
    }

    /// `maps` without rrpipe's own mappings ([`DeadMemory::rrpipe`]): a
    /// mapping that overlaps one keeps only its parts outside it.
    pub fn program_maps(&self, maps: Vec<Mapping>) -> Vec<Mapping> {
        let mut out = maps;
        for &(a, b) in &self.rrpipe {
            out = out
                .into_iter()
                .flat_map(|m| {
                    if b <= m.start || a >= m.end {
                        return vec![m];
                    }
                    let part = |start: u64, end: u64| Mapping {
                        start,
                        end,
                        offset: m.offset + (start - m.start),
                        ..m.clone()
                    };
                    let mut kept = Vec::new();
                    if m.start < a {
                        kept.push(part(m.start, a));
                    }
                    if b < m.end {
                        kept.push(part(b, m.end));
                    }
                    kept
                })
                .collect();
        }
        out
    }

    /// The live parts of the mapping `[start, end)`, in address order.
    pub fn live_parts(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        let from = self
            .below
            .iter()
            .filter(|&&sp| (start..end).contains(&sp))
            .map(|&sp| sp.saturating_sub(RED_ZONE).max(start))
            .min()
            .unwrap_or(start);
        let mut parts = vec![(from, end)];
        for &(a, b) in &self.ranges {
            parts = parts
                .into_iter()
                .flat_map(|(s, e)| {
                    if b <= s || a >= e {
                        vec![(s, e)]
                    } else {
                        [(s, a.max(s)), (b.min(e), e)]
                            .into_iter()
                            .filter(|(x, y)| x < y)
                            .collect()
                    }
                })
                .collect();
        }
        parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rrpipe_mappings_are_cut_out_of_the_program_s() {
        let map = |start: u64, end: u64, offset: u64| Mapping {
            start,
            end,
            prot: 3,
            shared: false,
            offset,
            dev: 0,
            inode: 0,
            name: "".into(),
        };
        let d = DeadMemory {
            rrpipe: vec![(0x2000, 0x4000)],
            ..DeadMemory::default()
        };
        // Merged with neighbours on both sides (replay), or alone (record).
        assert_eq!(
            d.program_maps(vec![map(0x1000, 0x6000, 0x10)]),
            [map(0x1000, 0x2000, 0x10), map(0x4000, 0x6000, 0x3010)]
        );
        assert_eq!(
            d.program_maps(vec![
                map(0x1000, 0x2000, 0),
                map(0x2000, 0x4000, 0),
                map(0x4000, 0x6000, 0)
            ]),
            [map(0x1000, 0x2000, 0), map(0x4000, 0x6000, 0)]
        );
    }

    #[test]
    fn stacks_and_alternate_stacks() {
        // A thread on its regular stack, with an alternate stack in .bss.
        let d = DeadMemory::of([(0x7000_0800, Some((0x5000_1000, 0x5000_3000)))]);
        assert_eq!(
            d.live_parts(0x7000_0000, 0x7000_1000),
            [(0x7000_0780, 0x7000_1000)]
        );
        assert_eq!(
            d.live_parts(0x5000_0000, 0x5000_4000),
            [(0x5000_0000, 0x5000_1000), (0x5000_3000, 0x5000_4000)]
        );
        // The same thread running on its alternate stack: only below it.
        let d = DeadMemory::of([(0x5000_2000, Some((0x5000_1000, 0x5000_3000)))]);
        assert_eq!(
            d.live_parts(0x5000_0000, 0x5000_4000),
            [(0x5000_0000, 0x5000_1000), (0x5000_1f80, 0x5000_4000)]
        );
        // Mappings nothing touches stay whole.
        assert_eq!(d.live_parts(0x1000, 0x2000), [(0x1000, 0x2000)]);
    }
}
