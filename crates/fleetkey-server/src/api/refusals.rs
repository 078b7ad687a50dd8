//! Refused device sessions from keys no device has: counted per reason and
//! source prefix, and written to the audit log as one summary entry per interval
//! ([`SUMMARY_INTERVAL`]), so an unauthenticated peer cannot grow the audit log
//! faster than time does. Each refusal is still counted in metrics
//! (`fleetkey_device_refusals_total{reason}`) and logged. Refusals of a
//! registered device (suspended, decommissioned, …) need that device's key and
//! stay one audit entry each.

use crate::fleet::RefusalCount;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

/// How often counted refusals are written to the audit log (when there were any).
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(60);

/// Distinct (reason, source prefix) pairs one summary lists; refusals beyond
/// them are counted under the source prefix `other`.
pub const MAX_SOURCES: usize = 256;

/// Refusals counted since the last summary.
#[derive(Debug, Default)]
pub struct RefusalTally {
    counts: Mutex<HashMap<(&'static str, String), u64>>,
}

impl RefusalTally {
    /// Counts one refusal of a session from `ip`.
    pub fn count(&self, reason: &'static str, ip: IpAddr) {
        let mut m = self.counts.lock();
        let mut key = (reason, source_prefix(ip));
        if !m.contains_key(&key) && m.len() >= MAX_SOURCES {
            key.1 = "other".to_owned();
        }
        *m.entry(key).or_default() += 1;
    }

    /// The counts so far, most first, and a fresh start.
    pub fn take(&self) -> Vec<RefusalCount> {
        let drained: Vec<_> = self.counts.lock().drain().collect();
        let mut out: Vec<RefusalCount> = drained
            .into_iter()
            .map(|((reason, source), count)| RefusalCount {
                reason: reason.to_owned(),
                source,
                count,
            })
            .collect();
        out.sort_by(|a, b| b.count.cmp(&a.count).then(a.source.cmp(&b.source)));
        out
    }
}

/// The network a refusal is counted under: the /24 of an IPv4 address, the /48
/// of an IPv6 one (an IPv4-mapped address counts as IPv4).
pub fn source_prefix(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4_prefix(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4_prefix(v4),
            None => {
                let s = v6.segments();
                format!(
                    "{}/48",
                    std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0)
                )
            }
        },
    }
}

fn v4_prefix(v4: std::net::Ipv4Addr) -> String {
    let o = v4.octets();
    format!("{}.{}.{}.0/24", o[0], o[1], o[2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(
            source_prefix("203.0.113.77".parse().unwrap()),
            "203.0.113.0/24"
        );
        assert_eq!(
            source_prefix("::ffff:203.0.113.77".parse().unwrap()),
            "203.0.113.0/24"
        );
        assert_eq!(
            source_prefix("2001:db8:1:2::9".parse().unwrap()),
            "2001:db8:1::/48"
        );
    }

    #[test]
    fn counts_are_bounded_by_distinct_sources() {
        let t = RefusalTally::default();
        for i in 0..(u32::try_from(MAX_SOURCES).unwrap() + 50) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(i << 8));
            t.count("unknown_device", ip);
            t.count("unknown_device", ip);
        }
        let c = t.take();
        assert_eq!(c.len(), MAX_SOURCES + 1);
        assert_eq!(
            c.iter().map(|c| c.count).sum::<u64>(),
            2 * (MAX_SOURCES as u64 + 50)
        );
        assert_eq!(c[0].source, "other");
        assert_eq!(c[0].count, 100);
        assert!(t.take().is_empty(), "a fresh start");
    }
}
