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

/// The dead parts of an address space.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeadMemory {
    /// Stack pointers on regular stacks: the stack mapping holding one is
    /// dead from its start up to the red zone.
    pub below: Vec<u64>,
    /// Dead address ranges `[start, end)`: alternate stacks not in use, and
    /// the part of one in use below its red zone.
    pub ranges: Vec<(u64, u64)>,
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
