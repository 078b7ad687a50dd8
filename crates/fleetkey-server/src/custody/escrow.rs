//! Root escrow, k of n: the key-encryption key file split into Shamir shares
//! (GF(256), the `blahaj` crate), each written as one line of text that a
//! person can keep on paper or in a vault, and recovered from any `k` of them.
//!
//! A share line (docs/formats.md, "Escrow shares"):
//!
//! ```text
//! fleetkey-share-v1 <set> <k>-of-<n> <index> <share> <check>
//! ```
//!
//! `set` is 16 hex digits naming one split (shares of different splits never
//! combine), `share` the share's bytes in unpadded base64url (its x coordinate,
//! then one byte per secret byte), `check` the first 8 hex digits of SHA-256 of
//! everything before it (a mistyped or damaged line is named, not combined).
//! Fewer than `k` distinct shares are refused before any arithmetic: they say
//! nothing about the secret, so there is nothing to try.

use crate::error::{Error, Result};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use zeroize::Zeroizing;

/// A share line's first word.
pub const PREFIX: &str = "fleetkey-share-v1";
/// Largest secret split (a key file is well under it).
pub const MAX_SECRET: usize = 4096;
/// Longest share line read.
pub const MAX_LINE: usize = 8192;

/// One parsed share.
#[derive(Clone)]
pub struct Share {
    /// The split it belongs to.
    pub set: String,
    /// Shares needed.
    pub threshold: u8,
    /// Shares made.
    pub count: u8,
    /// Its number (1..=count).
    pub index: u8,
    bytes: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Share")
            .field("set", &self.set)
            .field("threshold", &self.threshold)
            .field("count", &self.count)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

fn check(text: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    hex::encode(&d.as_ref()[..4])
}

/// Splits `secret` into `count` shares of which any `threshold` recover it
/// (2 ≤ threshold ≤ count ≤ 255); one line each, in index order.
pub fn split(secret: &[u8], threshold: u8, count: u8) -> Result<Vec<Zeroizing<String>>> {
    if secret.is_empty() || secret.len() > MAX_SECRET {
        return Err(Error::Invalid {
            what: "escrow",
            why: format!("the secret is {} bytes (1 to {MAX_SECRET})", secret.len()),
        });
    }
    if threshold < 2 || threshold > count {
        return Err(Error::Invalid {
            what: "escrow",
            why: format!(
                "threshold {threshold} of {count} shares: need 2 <= threshold <= shares <= 255"
            ),
        });
    }
    let set: [u8; 8] = fleetkey_crypto::rand::array()?;
    let set = hex::encode(set);
    let dealer = blahaj::Sharks(threshold).dealer(secret);
    let mut out = Vec::with_capacity(usize::from(count));
    for (i, share) in dealer.take(usize::from(count)).enumerate() {
        let bytes = Zeroizing::new(Vec::from(&share));
        let body = format!(
            "{PREFIX} {set} {threshold}-of-{count} {} {}",
            i + 1,
            URL_SAFE_NO_PAD.encode(bytes.as_slice())
        );
        let sum = check(&body);
        out.push(Zeroizing::new(format!("{body} {sum}")));
    }
    Ok(out)
}

/// Parses one share line (surrounding whitespace ignored).
pub fn parse(line: &str) -> Result<Share> {
    let bad = |why: &str| Error::Invalid {
        what: "escrow share",
        why: format!("not a fleetkey share: {why}"),
    };
    let line = line.trim();
    if line.len() > MAX_LINE {
        return Err(bad("too long"));
    }
    let words: Vec<&str> = line.split(' ').collect();
    let [prefix, set, k_of_n, index, share, sum] = words.as_slice() else {
        return Err(bad("expected six words"));
    };
    if *prefix != PREFIX {
        return Err(bad("it does not start with fleetkey-share-v1"));
    }
    let body_len = line.len() - sum.len() - 1;
    if check(&line[..body_len]) != *sum {
        return Err(bad("its check digits do not match (mistyped or damaged)"));
    }
    if set.len() != 16 || !set.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad("the set is not 16 hex digits"));
    }
    let (k, n) = k_of_n
        .split_once("-of-")
        .ok_or_else(|| bad("expected K-of-N"))?;
    let threshold: u8 = k.parse().map_err(|_| bad("K is not a number"))?;
    let count: u8 = n.parse().map_err(|_| bad("N is not a number"))?;
    let index: u8 = index
        .parse()
        .map_err(|_| bad("the index is not a number"))?;
    if threshold < 2 || threshold > count || index == 0 || index > count {
        return Err(bad("K, N or the index is out of range"));
    }
    let bytes = Zeroizing::new(
        URL_SAFE_NO_PAD
            .decode(share)
            .map_err(|_| bad("the share is not base64url"))?,
    );
    if bytes.len() < 2 || bytes.len() > MAX_SECRET + 1 {
        return Err(bad("the share's length is out of range"));
    }
    Ok(Share {
        set: (*set).to_owned(),
        threshold,
        count,
        index,
        bytes,
    })
}

/// The secret from `shares`: all of one split, at least its threshold of
/// distinct ones.
pub fn recover(shares: &[Share]) -> Result<Zeroizing<Vec<u8>>> {
    let first = shares.first().ok_or_else(|| Error::Invalid {
        what: "escrow",
        why: "no shares given".into(),
    })?;
    if shares
        .iter()
        .any(|s| s.set != first.set || s.threshold != first.threshold || s.count != first.count)
    {
        return Err(Error::Invalid {
            what: "escrow",
            why: "the shares are from different splits (their set or K-of-N differ)".into(),
        });
    }
    let mut distinct: Vec<&Share> = Vec::new();
    for s in shares {
        if !distinct.iter().any(|d| d.index == s.index) {
            distinct.push(s);
        }
    }
    if distinct.len() < usize::from(first.threshold) {
        return Err(Error::Invalid {
            what: "escrow",
            why: format!(
                "{} distinct shares given; this split needs {} of {}",
                distinct.len(),
                first.threshold,
                first.count
            ),
        });
    }
    let parsed = distinct
        .iter()
        .map(|s| {
            blahaj::Share::try_from(s.bytes.as_slice()).map_err(|e| Error::Invalid {
                what: "escrow",
                why: format!("share {}: {e}", s.index),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let secret = blahaj::Sharks(first.threshold)
        .recover(parsed.iter())
        .map_err(|e| Error::Invalid {
            what: "escrow",
            why: format!("recovering: {e}"),
        })?;
    Ok(Zeroizing::new(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_k_recover_and_fewer_do_not() {
        let secret = b"{\"fleetkey\":\"symmetric-key\",\"key\":\"0123456789abcdef\"}".to_vec();
        let lines = split(&secret, 3, 5).unwrap();
        assert_eq!(lines.len(), 5);
        let shares: Vec<Share> = lines.iter().map(|l| parse(l).unwrap()).collect();
        // Every 3-subset recovers.
        for a in 0..5 {
            for b in a + 1..5 {
                for c in b + 1..5 {
                    let got = recover(&[shares[a].clone(), shares[b].clone(), shares[c].clone()])
                        .unwrap();
                    assert_eq!(got.as_slice(), secret.as_slice(), "{a} {b} {c}");
                }
            }
        }
        // Two are refused, and a repeated share does not count twice.
        let e = recover(&[shares[0].clone(), shares[1].clone()]).unwrap_err();
        assert!(e.to_string().contains("needs 3 of 5"), "{e}");
        assert!(recover(&[shares[0].clone(), shares[1].clone(), shares[1].clone()]).is_err());
        // Interpolating two shares as if they were enough gives something else.
        let two: Vec<blahaj::Share> = shares[..2]
            .iter()
            .map(|s| blahaj::Share::try_from(s.bytes.as_slice()).unwrap())
            .collect();
        let wrong = blahaj::Sharks(2).recover(two.iter()).unwrap();
        assert_ne!(wrong, secret);
    }

    #[test]
    fn damaged_foreign_and_mixed_shares_are_named() {
        let lines = split(b"secret key file", 2, 3).unwrap();
        let other = split(b"secret key file", 2, 3).unwrap();
        // One character changed.
        let mut bad = lines[0].to_string();
        let at = bad.len() - 12;
        bad.replace_range(at..at + 1, if &bad[at..at + 1] == "A" { "B" } else { "A" });
        assert!(
            parse(&bad)
                .unwrap_err()
                .to_string()
                .contains("check digits")
        );
        assert!(parse("hello world").is_err());
        assert!(parse(&"x".repeat(MAX_LINE + 1)).is_err());
        let mixed = [parse(&lines[0]).unwrap(), parse(&other[1]).unwrap()];
        assert!(
            recover(&mixed)
                .unwrap_err()
                .to_string()
                .contains("different splits")
        );
        assert!(split(b"s", 1, 3).is_err());
        assert!(split(b"s", 4, 3).is_err());
        assert!(split(b"", 2, 3).is_err());
        // No secret in Debug.
        let s = parse(&lines[0]).unwrap();
        assert!(!format!("{s:?}").contains(lines[0].split(' ').nth(4).unwrap()));
    }
}
