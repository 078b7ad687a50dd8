//! Which device-session patterns the listener accepts, changed at run time
//! (docs/operations.md, "Session patterns"): a list for the whole service and
//! one per fleet, both audited. A fleet's list narrows the service's (the
//! service's list always bounds it, so a pattern disabled service-wide is off for
//! every fleet). Every instance re-reads a list at most [`PATTERNS_REFRESH`]
//! after it changed, whether or not the change was announced.

use super::{DeviceSessions, invalid};
use crate::audit::AuditDraft;
use crate::error::Result;
use crate::store::Change;
use serde_json::json;
use std::time::{Duration, Instant};

/// How long an instance trusts a list it read: a change made anywhere applies
/// on every instance within this.
pub const PATTERNS_REFRESH: Duration = Duration::from_millis(500);

/// The service-wide scope's name in the store (fleet names cannot be `*`).
const SERVICE: &str = "*";

/// A device-session pattern the listener offers.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub enum SessionPattern {
    /// Noise IK with the server key pinned or from a signed record.
    #[serde(rename = "ik")]
    Ik,
    /// IKpsk2 with ML-KEM-768: the post-quantum hybrid.
    #[serde(rename = "ik-hybrid")]
    IkHybrid,
    /// Noise XX: first contact, the server key learned and pinned.
    #[serde(rename = "xx")]
    Xx,
}

impl SessionPattern {
    /// Every pattern, in the order lists are shown.
    pub const ALL: [SessionPattern; 3] = [Self::Ik, Self::IkHybrid, Self::Xx];

    /// The name in lists, the API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ik => "ik",
            Self::IkHybrid => "ik-hybrid",
            Self::Xx => "xx",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                invalid(
                    "session pattern",
                    format!("{s:?} is not one of ik, ik-hybrid, xx"),
                )
            })
    }

    fn bit(self) -> u8 {
        match self {
            Self::Ik => 1,
            Self::IkHybrid => 2,
            Self::Xx => 4,
        }
    }
}

/// A set of patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Set(u8);

impl Set {
    const ALL: Set = Set(7);

    fn of(list: &[SessionPattern]) -> Self {
        Set(list.iter().fold(0, |b, p| b | p.bit()))
    }

    fn parse(stored: &str) -> Result<Self> {
        let mut list = Vec::new();
        for name in stored.split(',').filter(|s| !s.is_empty()) {
            list.push(SessionPattern::parse(name)?);
        }
        Ok(Self::of(&list))
    }

    fn contains(self, p: SessionPattern) -> bool {
        self.0 & p.bit() != 0
    }

    fn list(self) -> Vec<SessionPattern> {
        SessionPattern::ALL
            .into_iter()
            .filter(|p| self.contains(*p))
            .collect()
    }

    fn text(self) -> String {
        let names: Vec<&str> = self
            .list()
            .into_iter()
            .map(SessionPattern::as_str)
            .collect();
        names.join(",")
    }
}

/// What a scope's patterns are.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct PatternsInfo {
    /// The fleet, or absent for the service-wide list.
    pub fleet: Option<String>,
    /// The list set for this scope; absent: none (the service's, or every pattern).
    pub patterns: Option<Vec<SessionPattern>>,
    /// What the listener accepts for it now: the scope's list within the
    /// service's.
    pub effective: Vec<SessionPattern>,
}

/// Cached lists: scope → (its set, if any; when read).
pub(super) type PatternCache =
    parking_lot::Mutex<std::collections::HashMap<String, (Option<Set>, Instant)>>;

impl DeviceSessions {
    /// The list stored for `scope`, cached for [`PATTERNS_REFRESH`].
    async fn scope_set(&self, scope: &str) -> Result<Option<Set>> {
        if let Some((set, at)) = self.patterns.lock().get(scope)
            && at.elapsed() < PATTERNS_REFRESH
        {
            return Ok(*set);
        }
        let set = match self.store.session_patterns(scope).await? {
            Some(text) => Some(Set::parse(&text)?),
            None => None,
        };
        self.patterns
            .lock()
            .insert(scope.to_owned(), (set, Instant::now()));
        Ok(set)
    }

    async fn effective(&self, fleet: Option<&str>) -> Result<Set> {
        let service = self.scope_set(SERVICE).await?.unwrap_or(Set::ALL);
        let own = match fleet {
            Some(f) => self.scope_set(f).await?.unwrap_or(Set::ALL),
            None => Set::ALL,
        };
        Ok(Set(service.0 & own.0))
    }

    /// Whether a device of `fleet` may open a session with `pattern` now;
    /// otherwise why not (for the refusal the device receives).
    pub async fn pattern_allowed(
        &self,
        fleet: &str,
        pattern: SessionPattern,
    ) -> Result<std::result::Result<(), String>> {
        let set = self.effective(Some(fleet)).await?;
        if set.contains(pattern) {
            return Ok(Ok(()));
        }
        Ok(Err(format!(
            "pattern {} is not allowed for fleet {fleet} (allowed: {})",
            pattern.as_str(),
            if set.0 == 0 {
                "none".to_owned()
            } else {
                set.text()
            }
        )))
    }

    /// The patterns of `fleet` (or of the service, for `None`).
    pub async fn patterns(&self, fleet: Option<&str>) -> Result<PatternsInfo> {
        if let Some(f) = fleet {
            self.core.issuer(f).await?;
        }
        let own = self.scope_set(fleet.unwrap_or(SERVICE)).await?;
        Ok(PatternsInfo {
            fleet: fleet.map(str::to_owned),
            patterns: own.map(Set::list),
            effective: self.effective(fleet).await?.list(),
        })
    }

    /// Sets (or, with `None`, removes) the list of `fleet` (or of the service,
    /// for `None`), audited as `session.patterns`. An empty list is refused: a
    /// fleet that should accept nothing is suspended instead.
    pub async fn set_patterns(
        &self,
        actor: &str,
        fleet: Option<&str>,
        patterns: Option<&[SessionPattern]>,
    ) -> Result<PatternsInfo> {
        if let Some(f) = fleet {
            self.core.issuer(f).await?;
        }
        if patterns.is_some_and(<[SessionPattern]>::is_empty) {
            return Err(invalid(
                "session patterns",
                "at least one of ik, ik-hybrid, xx (or none given, to inherit)",
            ));
        }
        let scope = fleet.unwrap_or(SERVICE);
        let text = patterns.map(|p| Set::of(p).text());
        let now = self.core.clock.now();
        self.store
            .apply(
                Change::SetSessionPatterns {
                    scope: scope.to_owned(),
                    patterns: text.clone(),
                    at: now,
                },
                AuditDraft::new(
                    actor,
                    "session.patterns",
                    fleet.map_or_else(|| "service".to_owned(), |f| format!("fleet:{f}")),
                    json!({ "patterns": text }),
                ),
                now,
            )
            .await?;
        self.patterns.lock().remove(scope);
        self.patterns(fleet).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn lists_parse_and_print_in_one_order() {
        let s = Set::parse("xx,ik").unwrap();
        assert_eq!(s.text(), "ik,xx");
        assert!(s.contains(SessionPattern::Xx) && !s.contains(SessionPattern::IkHybrid));
        assert!(Set::parse("ik,nn").is_err());
        assert_eq!(Set::ALL.list(), SessionPattern::ALL);
        assert_eq!(
            serde_json::to_value(SessionPattern::IkHybrid).unwrap(),
            "ik-hybrid"
        );
    }
}
