//! The handshake patterns and cipher suites fleetkey speaks, named exactly as the
//! Noise specification names them.

/// A handshake pattern (Noise specification §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// The normal case: the initiator knows the responder's static key; both
    /// authenticate; one round trip.
    IK,
    /// First contact: static keys exchanged in the handshake; the initiator then
    /// pins the responder's key and uses IK.
    XX,
    /// One-way messages to a known recipient (no response, no sender identity).
    N,
    /// No static keys; identity comes from an attestation signed over the
    /// handshake hash ([`crate::attestation`]).
    NN,
    /// The post-quantum hybrid: `IKpsk2` where the initiator encapsulates to the
    /// responder's ML-KEM-768 key in the first message's payload and the shared
    /// secret is the PSK mixed in at the end of the second message, so the session
    /// keys depend on both X25519 and ML-KEM (`docs/protocol.md#post-quantum-hybrid`).
    IKHybrid,
}

impl Pattern {
    /// Every pattern.
    pub const ALL: [Pattern; 5] = [
        Pattern::IK,
        Pattern::XX,
        Pattern::N,
        Pattern::NN,
        Pattern::IKHybrid,
    ];

    /// The name in the protocol string.
    pub fn name(self) -> &'static str {
        match self {
            Pattern::IK => "IK",
            Pattern::XX => "XX",
            Pattern::N => "N",
            Pattern::NN => "NN",
            Pattern::IKHybrid => "IKpsk2",
        }
    }

    /// Whether the initiator has (and sends or uses) a static key.
    pub fn initiator_static(self) -> bool {
        matches!(self, Pattern::IK | Pattern::XX | Pattern::IKHybrid)
    }

    /// Whether the responder has a static key.
    pub fn responder_static(self) -> bool {
        !matches!(self, Pattern::NN)
    }

    /// Whether the initiator must know the responder's static key beforehand.
    pub fn responder_known(self) -> bool {
        matches!(self, Pattern::IK | Pattern::N | Pattern::IKHybrid)
    }

    /// Whether the pattern carries an ML-KEM-768 encapsulation.
    pub fn hybrid(self) -> bool {
        matches!(self, Pattern::IKHybrid)
    }

    /// Handshake messages in the pattern.
    pub fn messages(self) -> usize {
        match self {
            Pattern::N => 1,
            Pattern::IK | Pattern::NN | Pattern::IKHybrid => 2,
            Pattern::XX => 3,
        }
    }
}

/// A cipher suite: DH, cipher and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Suite {
    /// `25519_ChaChaPoly_BLAKE2s`: the default.
    ChaChaPolyBlake2s,
    /// `25519_AESGCM_SHA256`: for FIPS-leaning deployments (every primitive from aws-lc).
    AesGcmSha256,
}

impl Suite {
    /// Every suite.
    pub const ALL: [Suite; 2] = [Suite::ChaChaPolyBlake2s, Suite::AesGcmSha256];

    /// The suite part of the protocol string.
    pub fn name(self) -> &'static str {
        match self {
            Suite::ChaChaPolyBlake2s => "25519_ChaChaPoly_BLAKE2s",
            Suite::AesGcmSha256 => "25519_AESGCM_SHA256",
        }
    }
}

/// The full protocol name, e.g. `Noise_IK_25519_ChaChaPoly_BLAKE2s`.
pub fn protocol_name(pattern: Pattern, suite: Suite) -> String {
    format!("Noise_{}_{}", pattern.name(), suite.name())
}
