//! Nonces for single-shot envelopes: `instance id (8 bytes) ‖ counter (BE32)`, per
//! key version, as the SCBE specification asks.
//!
//! Counters are reserved durably in blocks: the store commits the new high-water
//! mark *before* any counter of the block is used, so a crash or `kill -9` can lose
//! unused counters but never hand one out twice; after a restart the next block
//! starts above the last reservation. When an instance id's 2^32 counters for a key
//! version run out, the allocator leases a fresh instance id (rotation policy
//! normally rotates long before; a warning fires at the alert threshold).

use std::sync::atomic::{AtomicU64, Ordering};

/// Default number of counters reserved per store transaction.
pub const DEFAULT_BLOCK: u32 = 65_536;
/// Default counter value at which a warning is raised: 2^31.
pub const DEFAULT_ALERT_AT: u64 = 1 << 31;

/// The 12-byte nonce for `instance` and `counter`.
#[inline]
pub fn nonce(instance: &[u8; 8], counter: u32) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(instance);
    n[8..].copy_from_slice(&counter.to_be_bytes());
    n
}

/// A reserved block of counters `[start, end)`, handed out lock-free. `limit` may be
/// below `end` when the key version's use budget ends inside the block.
#[derive(Debug)]
pub struct NonceBlock {
    /// Instance id of this block.
    pub instance: [u8; 8],
    /// First counter.
    pub start: u64,
    /// One past the last reserved counter.
    pub end: u64,
    /// One past the last counter this block may hand out.
    pub limit: u64,
    next: AtomicU64,
}

impl NonceBlock {
    /// A block; `limit` is clamped to `end`.
    pub fn new(instance: [u8; 8], start: u64, end: u64, limit: u64) -> Self {
        Self {
            instance,
            start,
            end,
            limit: limit.min(end),
            next: AtomicU64::new(start),
        }
    }

    /// An empty block: every take fails, sending callers to the slow path.
    pub fn empty() -> Self {
        Self::new([0; 8], 0, 0, 0)
    }

    /// The next counter, or `None` when the block is used up.
    #[inline]
    pub fn take(&self) -> Option<u32> {
        let c = self.next.fetch_add(1, Ordering::Relaxed);
        if c < self.limit {
            // limit <= end <= 2^32, so c fits in u32.
            u32::try_from(c).ok()
        } else {
            None
        }
    }

    /// Closes the block: every later [`NonceBlock::take`] fails, and the returned
    /// count is exact (no take can slip in after it). Returns counters handed out.
    pub fn close(&self) -> u64 {
        let prev = self.next.fetch_add(1 << 40, Ordering::Relaxed);
        prev.min(self.limit) - self.start
    }

    /// Counters handed out so far (never more than `limit - start`).
    pub fn used(&self) -> u64 {
        self.next
            .load(Ordering::Relaxed)
            .min(self.limit)
            .saturating_sub(self.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_layout() {
        assert_eq!(
            nonce(&[1, 2, 3, 4, 5, 6, 7, 8], 0x0a0b0c0d),
            [1, 2, 3, 4, 5, 6, 7, 8, 0x0a, 0x0b, 0x0c, 0x0d]
        );
    }

    #[test]
    fn block_hands_out_each_counter_once_up_to_limit() {
        let b = NonceBlock::new([0; 8], 10, 20, 15);
        let got: Vec<u32> = std::iter::from_fn(|| b.take()).collect();
        assert_eq!(got, (10..15).collect::<Vec<_>>());
        assert_eq!(b.take(), None);
        assert_eq!(b.used(), 5);
        let c = NonceBlock::new([0; 8], 10, 20, 20);
        c.take();
        c.take();
        assert_eq!(c.close(), 2);
        assert_eq!(c.take(), None);
        assert_eq!(c.used(), 10, "a closed block reads as used up");
    }

    #[test]
    fn concurrent_takes_never_repeat() {
        let b = std::sync::Arc::new(NonceBlock::new([0; 8], 0, 100_000, 100_000));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || std::iter::from_fn(|| b.take()).collect::<Vec<_>>())
            })
            .collect();
        let mut all: Vec<u32> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 100_000);
    }
}
