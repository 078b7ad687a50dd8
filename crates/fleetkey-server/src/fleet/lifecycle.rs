//! The device life-cycle table. Every transition is checked against it inside the
//! store transaction that makes it, so a device can never take a path outside it.
//!
//! ```text
//! manufactured ──onboard──▶ onboarded ──activate──▶ active ◀──▶ rotating
//!      │                        │                     │            │
//!      └──────────┬─────────────┴──────────┬──────────┴────────────┘
//!                 ▼                        ▼
//!            suspended ──resume──▶ active   decommissioning ──wipe receipt──▶ decommissioned
//! ```

use crate::clock::UnixTime;
use crate::store::DeviceState::{self, *};
use crate::store::Transition;

/// The states a device may move to `to` from.
pub fn allowed_from(to: DeviceState) -> &'static [DeviceState] {
    match to {
        Manufactured => &[],
        Onboarded => &[Manufactured],
        Active => &[Onboarded, Rotating, Suspended],
        Rotating => &[Onboarded, Active],
        Suspended => &[Manufactured, Onboarded, Active, Rotating],
        Decommissioning => &[Manufactured, Onboarded, Active, Rotating, Suspended],
        Decommissioned => &[Decommissioning],
    }
}

/// The change that moves device `id` to `to` from any state the table allows.
pub fn transition(id: &str, to: DeviceState, at: UnixTime) -> Transition {
    Transition::new(id, allowed_from(to), to, at)
}

/// Whether `from → to` is in the table.
pub fn allowed(from: DeviceState, to: DeviceState) -> bool {
    allowed_from(to).contains(&from)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [DeviceState; 7] = [
        Manufactured,
        Onboarded,
        Active,
        Rotating,
        Decommissioning,
        Decommissioned,
        Suspended,
    ];

    #[test]
    fn decommissioned_is_final_and_nothing_returns_to_manufactured() {
        for to in ALL {
            assert!(!allowed(Decommissioned, to), "decommissioned -> {to:?}");
            assert!(!allowed(to, Manufactured), "{to:?} -> manufactured");
        }
        assert!(allowed(Manufactured, Onboarded));
        assert!(!allowed(Manufactured, Active), "must onboard first");
        assert!(
            !allowed(Active, Decommissioned),
            "must go through decommissioning"
        );
        assert!(allowed(Decommissioning, Decommissioned));
    }
}
