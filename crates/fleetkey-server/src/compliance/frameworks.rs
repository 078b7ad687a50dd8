//! The frameworks' controls that fleetkey gives evidence for, each mapped to
//! the checks ([`super::Check`]) that evaluate it. A control mapped to several
//! checks takes the worst of their statuses. `docs/compliance/<framework>.md` is
//! [`markdown`] of each, checked by a test.

use super::Check::{self, *};

/// One control of a framework.
#[derive(Debug, Clone, Copy)]
pub struct Control {
    /// Its identifier in the framework.
    pub id: &'static str,
    /// Its title (paraphrased).
    pub title: &'static str,
    /// The checks whose evidence bears on it.
    pub checks: &'static [Check],
}

/// A framework.
#[derive(Debug, Clone, Copy)]
pub struct Framework {
    /// The name `--framework` takes.
    pub name: &'static str,
    /// Its full title.
    pub title: &'static str,
    /// The controls fleetkey gives evidence for.
    pub controls: &'static [Control],
}

const fn c(id: &'static str, title: &'static str, checks: &'static [Check]) -> Control {
    Control { id, title, checks }
}

/// Every framework `fleetkey compliance report` knows.
pub const FRAMEWORKS: [Framework; 4] = [
    Framework {
        name: "soc2",
        title: "SOC 2 (AICPA Trust Services Criteria, 2017, revised points of focus 2022)",
        controls: &[
            c(
                "CC6.1",
                "Logical access security: encryption keys protected, access restricted",
                &[KeyCustody, KeyRotation, AccessControl],
            ),
            c(
                "CC6.2",
                "Access credentials issued, reviewed and removed",
                &[AccessControl],
            ),
            c(
                "CC6.6",
                "Protection against threats from outside the system boundary",
                &[AuthenticationMonitoring],
            ),
            c(
                "CC6.7",
                "Data in transmission protected",
                &[TransmissionEncryption],
            ),
            c(
                "CC7.2",
                "System components monitored for anomalies",
                &[AuditLogging, AuthenticationMonitoring],
            ),
            c(
                "CC7.3",
                "Security events evaluated; integrity of the record",
                &[AuditIntegrity],
            ),
            c("A1.2", "Backup and recovery infrastructure", &[Backups]),
            c(
                "A1.3",
                "Recovery plan procedures tested",
                &[RecoveryTesting],
            ),
        ],
    },
    Framework {
        name: "hipaa",
        title: "HIPAA Security Rule (45 CFR Part 164, Subpart C)",
        controls: &[
            c("164.308(a)(7)(ii)(A)", "Data backup plan", &[Backups]),
            c(
                "164.308(a)(7)(ii)(D)",
                "Testing and revision of contingency plans",
                &[RecoveryTesting],
            ),
            c(
                "164.312(a)(1)",
                "Access control: unique user identification, least access",
                &[AccessControl],
            ),
            c(
                "164.312(a)(2)(iv)",
                "Encryption and decryption of ePHI",
                &[KeyCustody, KeyRotation],
            ),
            c(
                "164.312(b)",
                "Audit controls",
                &[AuditLogging, AuditIntegrity],
            ),
            c(
                "164.312(c)(1)",
                "Integrity: protect ePHI from improper alteration",
                &[AuditIntegrity],
            ),
            c(
                "164.312(d)",
                "Person or entity authentication",
                &[AccessControl, AuthenticationMonitoring],
            ),
            c(
                "164.312(e)(1)",
                "Transmission security",
                &[TransmissionEncryption],
            ),
        ],
    },
    Framework {
        name: "pci-dss-4.0",
        title: "PCI DSS v4.0",
        controls: &[
            c(
                "3.6.1",
                "Procedures protect cryptographic keys against disclosure and misuse",
                &[KeyCustody],
            ),
            c(
                "3.7.4",
                "Key changes at the end of the defined cryptoperiod",
                &[KeyRotation],
            ),
            c(
                "4.2.1",
                "Strong cryptography protects data in transmission",
                &[TransmissionEncryption],
            ),
            c(
                "7.2.1",
                "Access control model: least privilege",
                &[AccessControl],
            ),
            c(
                "8.3.4",
                "Invalid authentication attempts limited",
                &[AuthenticationMonitoring],
            ),
            c("10.2.1", "Audit logs enabled and active", &[AuditLogging]),
            c(
                "10.3.2",
                "Audit log files protected from modification",
                &[AuditIntegrity],
            ),
            c(
                "12.10.1",
                "Incident response plan, including recovery from backups",
                &[Backups, RecoveryTesting],
            ),
        ],
    },
    Framework {
        name: "nist-800-53",
        title: "NIST SP 800-53 Rev. 5",
        controls: &[
            c("AC-6", "Least privilege", &[AccessControl]),
            c("AU-2", "Event logging", &[AuditLogging]),
            c("AU-9", "Protection of audit information", &[AuditIntegrity]),
            c("AU-10", "Non-repudiation", &[AuditIntegrity]),
            c("CP-4", "Contingency plan testing", &[RecoveryTesting]),
            c("CP-9", "System backup", &[Backups]),
            c("IA-5", "Authenticator management", &[AccessControl]),
            c(
                "SC-5",
                "Denial-of-service protection",
                &[AuthenticationMonitoring],
            ),
            c(
                "SC-8",
                "Transmission confidentiality and integrity",
                &[TransmissionEncryption],
            ),
            c(
                "SC-12",
                "Cryptographic key establishment and management",
                &[KeyCustody, KeyRotation],
            ),
        ],
    },
];

/// The framework named `name`.
pub fn framework(name: &str) -> Option<&'static Framework> {
    FRAMEWORKS.iter().find(|f| f.name == name)
}

/// What each check looks at, for the mapping tables.
pub fn describe(check: Check) -> &'static str {
    match check {
        KeyRotation => "every enabled keyring rotates on a period of at most a year, none overdue",
        KeyCustody => {
            "the root key's custody: an HSM or cloud KMS passes; a local key file asks for attention"
        }
        AuditIntegrity => {
            "the audit hash chain verifies in place, and a signed checkpoint is under a day old"
        }
        AuditLogging => "the access log is on (and whether traces are exported)",
        TransmissionEncryption => "TLS on the HTTP and gRPC listeners",
        AccessControl => {
            "no admin token without expiry (fail); no token without expiry (attention)"
        }
        AuthenticationMonitoring => "rate limits in force; refused authentications counted",
        Backups => "scheduled backups, the newest under an hour old",
        RecoveryTesting => "a disaster-recovery drill within the last year (--drill-report)",
    }
}

/// The mapping table of `f` (`docs/compliance/<name>.md`).
pub fn markdown(f: &Framework) -> String {
    let mut out = format!(
        "# {}\n\n<!-- Generated from crates/fleetkey-server/src/compliance/frameworks.rs; a test keeps it current. -->\n\n\
`fleetkey compliance report --framework {}` evaluates these controls on a running service \
(docs/operations.md, \"Compliance reports\"). A control takes the worst status of its checks: \
pass, attention or fail. Each line of the report also says what remains the operator's duty; \
fleetkey's evidence never covers a control alone.\n\n| control | title | checks: what is looked at |\n|---|---|---|\n",
        f.title, f.name
    );
    for c in f.controls {
        let checks: Vec<String> = c
            .checks
            .iter()
            .map(|k| {
                let name = serde_json::to_value(k)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                format!("`{name}`: {}", describe(*k))
            })
            .collect();
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            c.id,
            c.title,
            checks.join("; ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_mapping_tables_in_docs_are_current() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/compliance");
        for f in &super::FRAMEWORKS {
            let path = dir.join(format!("{}.md", f.name));
            let want = super::markdown(f);
            if std::env::var_os("FLEETKEY_WRITE_SNAPSHOTS").is_some() {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &want).unwrap();
            }
            let have = std::fs::read_to_string(&path).unwrap_or_default();
            assert_eq!(
                have,
                want,
                "{} is stale: FLEETKEY_WRITE_SNAPSHOTS=1 cargo test -p fleetkey-server --lib compliance",
                path.display()
            );
        }
    }
}
