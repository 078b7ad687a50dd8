//! The AWS KMS door's signature check on arbitrary input: any Authorization
//! header is read or refused, and checking any request (method, path, headers,
//! body, time) against it never panics and never accepts a signature that
//! was not computed with the secret.
#![no_main]

use fleetkey_server::tokens::sigv4::{self, Authorization, Request};
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, UNIX_EPOCH};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(6, '\n');
    let (auth, method, uri, headers, body) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or("POST"),
        parts.next().unwrap_or("/"),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let _ = sigv4::parse_amz_date(auth);
    let parsed = sigv4::parse(auth);
    let lower = headers.to_ascii_lowercase();
    let headers: Vec<(&str, &str)> = lower.split(';').filter_map(|h| h.split_once('=')).collect();
    let req = Request {
        method,
        uri,
        headers: &headers,
        body: body.as_bytes(),
    };
    let now = UNIX_EPOCH + Duration::from_secs(1_440_000_000);
    if let Ok(a) = parsed {
        // A parsed header always has its mandatory parts.
        assert!(a.signed_headers.iter().any(|h| h == "host"));
        assert_eq!(a.signature.len(), 64);
        let _ = sigv4::verify(&a, &req, "fuzz secret", now);
    }
    // The same request under an arbitrary, syntactically valid header: an
    // all-zero signature is never the right one.
    let forged = Authorization {
        access_key_id: "FKIA0000000000000000".into(),
        date: "20150830".into(),
        region: "us-east-1".into(),
        signed_headers: headers.iter().map(|(k, _)| (*k).to_owned()).collect(),
        signature: "0".repeat(64),
    };
    assert!(sigv4::verify(&forged, &req, "fuzz secret", now).is_err());
});
