//! Fair admission to the device listener's handshake slots. A handshake costs the
//! server a slot until it completes, so the slots must not be cheap to hold:
//!
//! - a connection has [`FIRST_BYTES_DEADLINE`] to send its preamble (not the
//!   whole handshake deadline), so idle connections leave quickly;
//! - one source (an IPv4 address, an IPv6 /64) holds at most a share of the
//!   slots ([`PER_SOURCE_SHARE`]); past it, its own oldest handshake gives way;
//! - when every slot is held, the oldest handshake in progress gives way to the
//!   new connection. Handshakes of real devices take milliseconds, so the oldest
//!   is almost always one that stalls; a stalling peer cannot keep others out.

use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How long a new connection has to send its preamble.
pub const FIRST_BYTES_DEADLINE: Duration = Duration::from_secs(3);

/// One source holds at most `slots / PER_SOURCE_SHARE` slots (at least 1).
pub const PER_SOURCE_SHARE: usize = 8;

#[derive(Default)]
struct Table {
    next: u64,
    /// Held slots by admission order: id -> (source, eviction signal).
    held: BTreeMap<u64, (u128, Arc<Notify>)>,
    per_source: HashMap<u128, usize>,
}

impl Table {
    fn remove(&mut self, id: u64) -> Option<Arc<Notify>> {
        let (source, evict) = self.held.remove(&id)?;
        if let Some(n) = self.per_source.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                self.per_source.remove(&source);
            }
        }
        Some(evict)
    }
}

/// The handshake slots of one listener.
pub struct Admission {
    slots: usize,
    per_source: usize,
    table: Mutex<Table>,
}

/// A held slot; released when dropped. [`Slot::evicted`] resolves when a newer
/// connection took it.
pub struct Slot {
    id: u64,
    evict: Arc<Notify>,
    admission: Arc<Admission>,
}

impl Slot {
    /// Resolves when this slot was given to a newer connection.
    pub async fn evicted(&self) {
        self.evict.notified().await;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        {
            let mut t = self.admission.table.lock();
            t.remove(self.id);
        }
    }
}

impl Admission {
    /// `slots` handshakes at once (at least 1).
    pub fn new(slots: usize) -> Arc<Self> {
        let slots = slots.max(1);
        Arc::new(Self {
            slots,
            per_source: (slots / PER_SOURCE_SHARE).max(1),
            table: Mutex::new(Table::default()),
        })
    }

    /// A slot for a connection from `source`, and whether an older handshake was
    /// evicted to make room. `None` only if the table is unusable.
    pub fn admit(self: &Arc<Self>, source: u128) -> Option<(Slot, bool)> {
        let mut t = self.table.lock();
        // The source's own oldest gives way first, then the oldest of all.
        let victim = if t.per_source.get(&source).copied().unwrap_or(0) >= self.per_source {
            t.held
                .iter()
                .find(|(_, (s, _))| *s == source)
                .map(|(id, _)| *id)
        } else if t.held.len() >= self.slots {
            t.held.keys().next().copied()
        } else {
            None
        };
        let evicted = match victim.and_then(|id| t.remove(id)) {
            Some(n) => {
                n.notify_one();
                true
            }
            None => false,
        };
        let id = t.next;
        t.next += 1;
        let evict = Arc::new(Notify::new());
        t.held.insert(id, (source, evict.clone()));
        *t.per_source.entry(source).or_default() += 1;
        Some((
            Slot {
                id,
                evict,
                admission: self.clone(),
            },
            evicted,
        ))
    }

    /// Slots held now.
    pub fn held(&self) -> usize {
        self.table.lock().held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_oldest_gives_way_and_a_source_keeps_to_its_share() {
        let a = Admission::new(16); // 2 per source
        let (s1, e) = a.admit(1).unwrap();
        assert!(!e);
        let (_s2, _) = a.admit(1).unwrap();
        // Source 1's third evicts its own oldest.
        let (_s3, e) = a.admit(1).unwrap();
        assert!(e);
        tokio::time::timeout(Duration::from_secs(1), s1.evicted())
            .await
            .unwrap();
        assert_eq!(a.held(), 2);
        // Full: the oldest of all gives way.
        let mut held = Vec::new();
        for src in 2..9u128 {
            held.push(a.admit(src).unwrap().0);
            held.push(a.admit(src).unwrap().0);
        }
        assert_eq!(a.held(), 16);
        let (_new, e) = a.admit(100).unwrap();
        assert!(e);
        assert_eq!(a.held(), 16);
        drop(held);
        assert_eq!(a.held(), 2, "source 1's newer slot and the newest");
    }
}
