//! AWS Signature Version 4 as the AWS KMS door checks it: the `Authorization`
//! header read and bounded, the credential scope (any region, service `kms`),
//! `host` and `x-amz-date` signed, the request time within 15 minutes, and the
//! signature computed over the request with the access key's secret, compared
//! in constant time.
//!
//! The signature is computed here for the one request shape the door serves
//! (AWS's JSON protocol: `POST /`, no query string), hashing and HMACs by
//! aws-lc-rs, the signing key derived once per access key, day and region
//! ([`SigningKey`]); the tests check every signature against AWS's own
//! implementation (`aws-sigv4`) as the oracle, and the boto3 tests against
//! botocore's signer.

use std::time::{Duration, SystemTime};
use subtle::ConstantTimeEq as _;

/// How far a request's `x-amz-date` may be from the server's clock.
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);
/// Longest `Authorization` header read.
pub const MAX_AUTHORIZATION_LEN: usize = 4096;
/// Most signed headers.
pub const MAX_SIGNED_HEADERS: usize = 32;

/// Why a request's signature was not accepted, in the AWS error it becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization` header (`MissingAuthenticationTokenException`).
    Missing,
    /// The header cannot be read (`IncompleteSignatureException`).
    Incomplete(String),
    /// The access key is unknown, or its token revoked
    /// (`UnrecognizedClientException`).
    UnknownKey,
    /// The token behind the access key expired (`ExpiredTokenException`).
    Expired,
    /// Wrong signature, scope, service or time (`InvalidSignatureException`).
    Invalid(String),
}

impl AuthError {
    /// The AWS error type (`__type`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => "MissingAuthenticationTokenException",
            Self::Incomplete(_) => "IncompleteSignatureException",
            Self::UnknownKey => "UnrecognizedClientException",
            Self::Expired => "ExpiredTokenException",
            Self::Invalid(_) => "InvalidSignatureException",
        }
    }

    /// The message.
    pub fn message(&self) -> String {
        match self {
            Self::Missing => {
                "Missing Authentication Token: sign the request with AWS Signature Version 4".into()
            }
            Self::Incomplete(why) | Self::Invalid(why) => why.clone(),
            Self::UnknownKey => "The security token included in the request is invalid.".into(),
            Self::Expired => "The security token included in the request is expired".into(),
        }
    }
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 …` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The access key id.
    pub access_key_id: String,
    /// The scope's date (`YYYYMMDD`).
    pub date: String,
    /// The scope's region.
    pub region: String,
    /// The signed header names, lowercase, as given.
    pub signed_headers: Vec<String>,
    /// The signature, 64 lowercase hex digits.
    pub signature: String,
}

fn incomplete(why: &str) -> AuthError {
    AuthError::Incomplete(format!("Authorization header: {why}"))
}

/// Reads an `Authorization` header.
pub fn parse(header: &str) -> Result<Authorization, AuthError> {
    if header.len() > MAX_AUTHORIZATION_LEN {
        return Err(incomplete("too long"));
    }
    let rest = header
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or_else(|| incomplete("only AWS4-HMAC-SHA256 (Signature Version 4) is accepted"))?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or_else(|| incomplete("a part without '='"))?;
        let slot = match k {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut signature,
            _ => return Err(incomplete("an unknown part")),
        };
        if slot.replace(v).is_some() {
            return Err(incomplete("a part given twice"));
        }
    }
    let credential = credential.ok_or_else(|| incomplete("no Credential"))?;
    let signed = signed.ok_or_else(|| incomplete("no SignedHeaders"))?;
    let signature = signature.ok_or_else(|| incomplete("no Signature"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [akid, date, region, service, terminator] = scope[..] else {
        return Err(incomplete(
            "Credential is not KEY/DATE/REGION/SERVICE/aws4_request",
        ));
    };
    let word = |s: &str, max: usize| {
        !s.is_empty()
            && s.len() <= max
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !word(akid, 128) {
        return Err(incomplete("the access key id is malformed"));
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(incomplete("the credential scope's date is not YYYYMMDD"));
    }
    if !word(region, 32) {
        return Err(incomplete("the credential scope's region is malformed"));
    }
    if service != "kms" {
        return Err(AuthError::Invalid(format!(
            "Credential should be scoped to correct service: 'kms', not '{}'",
            service.chars().take(32).collect::<String>()
        )));
    }
    if terminator != "aws4_request" {
        return Err(incomplete(
            "the credential scope must end with aws4_request",
        ));
    }
    let signed_headers: Vec<String> = signed.split(';').map(str::to_owned).collect();
    if signed_headers.len() > MAX_SIGNED_HEADERS
        || signed_headers.iter().any(|h| {
            h.is_empty()
                || h.len() > 64
                || !h
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
    {
        return Err(incomplete("SignedHeaders is malformed"));
    }
    for required in ["host", "x-amz-date"] {
        if !signed_headers.iter().any(|h| h == required) {
            return Err(AuthError::Invalid(format!(
                "the {required} header must be signed"
            )));
        }
    }
    if signature.len() != 64
        || !signature
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(incomplete("Signature is not 64 lowercase hex digits"));
    }
    Ok(Authorization {
        access_key_id: akid.to_owned(),
        date: date.to_owned(),
        region: region.to_owned(),
        signed_headers,
        signature: signature.to_owned(),
    })
}

/// Reads `x-amz-date` (`YYYYMMDD'T'HHMMSS'Z'`).
pub fn parse_amz_date(s: &str) -> Option<SystemTime> {
    if s.len() != 16 || s.as_bytes()[8] != b'T' || s.as_bytes()[15] != b'Z' {
        return None;
    }
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        s.get(0..4)?,
        s.get(4..6)?,
        s.get(6..8)?,
        s.get(9..11)?,
        s.get(11..13)?,
        s.get(13..15)?
    );
    humantime::parse_rfc3339(&rfc3339).ok()
}

/// A request as the signature covers it.
pub struct Request<'a> {
    /// `POST`.
    pub method: &'a str,
    /// Path and query as sent.
    pub uri: &'a str,
    /// Every header as received (names lowercase).
    pub headers: &'a [(&'a str, &'a str)],
    /// The body.
    pub body: &'a [u8],
}

/// The key a day's signatures in one region are made with:
/// HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), "kms"), "aws4_request").
pub struct SigningKey {
    date: String,
    region: String,
    key: aws_lc_rs::hmac::Key,
}

fn hmac(key: &[u8], data: &[u8]) -> aws_lc_rs::hmac::Tag {
    aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key),
        data,
    )
}

impl SigningKey {
    /// Derives the key of `secret` for `date` (`YYYYMMDD`) and `region`.
    pub fn derive(secret: &str, date: &str, region: &str) -> Self {
        let k = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
        let k = hmac(k.as_ref(), region.as_bytes());
        let k = hmac(k.as_ref(), b"kms");
        let k = hmac(k.as_ref(), b"aws4_request");
        Self {
            date: date.to_owned(),
            region: region.to_owned(),
            key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, k.as_ref()),
        }
    }

    /// Whether this is the key for `date` and `region`.
    pub fn is_for(&self, date: &str, region: &str) -> bool {
        self.date == date && self.region == region
    }
}

/// Checks the request's time and signature under `secret` (the access key's
/// secret): the time within [`MAX_SKEW`] of `now`, the scope's date the
/// request's, every signed header present once, and the signature equal.
pub fn verify(
    auth: &Authorization,
    req: &Request<'_>,
    secret: &str,
    now: SystemTime,
) -> Result<(), AuthError> {
    verify_with(auth, req, now, |date, region| {
        std::sync::Arc::new(SigningKey::derive(secret, date, region))
    })
}

/// [`verify`] with the signing key from `key` (given the scope's date and
/// region), which may hand out a derived key it kept.
pub fn verify_with(
    auth: &Authorization,
    req: &Request<'_>,
    now: SystemTime,
    key: impl FnOnce(&str, &str) -> std::sync::Arc<SigningKey>,
) -> Result<(), AuthError> {
    let header = |name: &str| {
        let mut it = req.headers.iter().filter(|(k, _)| *k == name);
        match (it.next(), it.next()) {
            (Some((_, v)), None) => Ok(*v),
            (None, _) => Err(AuthError::Invalid(format!(
                "the signed header {name} is not in the request"
            ))),
            (Some(_), Some(_)) => Err(AuthError::Invalid(format!(
                "the signed header {name} is given twice"
            ))),
        }
    };
    // fleetkey issues no session tokens: a request that carries one was meant
    // for another service's temporary credentials.
    if req
        .headers
        .iter()
        .any(|(k, _)| *k == "x-amz-security-token")
    {
        return Err(AuthError::UnknownKey);
    }
    let amz_date = header("x-amz-date")?;
    let time = parse_amz_date(amz_date)
        .ok_or_else(|| AuthError::Invalid("x-amz-date is not YYYYMMDDTHHMMSSZ".into()))?;
    if !amz_date.starts_with(&auth.date) {
        return Err(AuthError::Invalid(
            "the credential scope's date is not the request's date".into(),
        ));
    }
    let skew = now
        .duration_since(time)
        .or_else(|e| Ok::<_, ()>(e.duration()))
        .unwrap_or_default();
    if skew > MAX_SKEW {
        return Err(AuthError::Invalid(format!(
            "Signature expired: {amz_date} is more than 15 minutes from the server's time"
        )));
    }
    let mut signed = Vec::with_capacity(auth.signed_headers.len());
    for name in &auth.signed_headers {
        signed.push((name.as_str(), header(name)?));
    }
    let key = key(&auth.date, &auth.region);
    let expected = signature(&key, auth, req, &signed, amz_date)?;
    if bool::from(expected.as_bytes().ct_eq(auth.signature.as_bytes())) {
        Ok(())
    } else {
        Err(AuthError::Invalid(
            "The request signature we calculated does not match the signature you provided.".into(),
        ))
    }
}

/// AWS's whitespace rule for a canonical header value: spaces trimmed at both
/// ends, each run of spaces inside made one.
fn trim_all(v: &str, out: &mut String) {
    let mut space = false;
    for c in v.trim_matches(' ').chars() {
        if c == ' ' {
            if !space {
                out.push(' ');
            }
            space = true;
        } else {
            out.push(c);
            space = false;
        }
    }
}

/// The request's signature: the canonical request of `POST /` (no query
/// string: the JSON protocol has none) over the signed headers, sorted, and
/// the body's SHA-256; the string to sign; its HMAC under the signing key.
fn signature(
    key: &SigningKey,
    auth: &Authorization,
    req: &Request<'_>,
    signed: &[(&str, &str)],
    amz_date: &str,
) -> Result<String, AuthError> {
    use aws_lc_rs::digest::{SHA256, digest};
    use std::fmt::Write as _;
    let (path, query) = req.uri.split_once('?').unwrap_or((req.uri, ""));
    if path != "/" || !query.is_empty() {
        return Err(AuthError::Invalid(
            "the AWS KMS API is POST / with no query string".into(),
        ));
    }
    let mut sorted: Vec<&(&str, &str)> = signed.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut creq = String::with_capacity(512);
    creq.push_str(req.method);
    creq.push_str("\n/\n\n");
    for (name, value) in &sorted {
        creq.push_str(name);
        creq.push(':');
        trim_all(value, &mut creq);
        creq.push('\n');
    }
    creq.push('\n');
    for (i, (name, _)) in sorted.iter().enumerate() {
        if i > 0 {
            creq.push(';');
        }
        creq.push_str(name);
    }
    creq.push('\n');
    push_hex(&mut creq, digest(&SHA256, req.body).as_ref());
    let mut sts = String::with_capacity(160);
    let _ = write!(
        sts,
        "AWS4-HMAC-SHA256\n{amz_date}\n{}/{}/kms/aws4_request\n",
        auth.date, auth.region,
    );
    push_hex(&mut sts, digest(&SHA256, creq.as_bytes()).as_ref());
    let mut out = String::with_capacity(64);
    push_hex(
        &mut out,
        aws_lc_rs::hmac::sign(&key.key, sts.as_bytes()).as_ref(),
    );
    Ok(out)
}

/// Appends the lowercase hex of a 32-byte digest or tag.
fn push_hex(out: &mut String, bytes: &[u8]) {
    let mut buf = [0u8; 64];
    if let Some(b) = buf.get_mut(..bytes.len() * 2)
        && hex::encode_to_slice(bytes, b).is_ok()
    {
        out.push_str(std::str::from_utf8(b).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The signature AWS's own implementation (aws-sigv4, the oracle) computes
    /// for the request over exactly the signed headers.
    fn compute(
        auth: &Authorization,
        req: &Request<'_>,
        signed: &[(&str, &str)],
        secret: &str,
        time: SystemTime,
    ) -> Result<String, AuthError> {
        use aws_sigv4::http_request::{
            PayloadChecksumKind, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
            sign,
        };
        let identity = aws_credential_types::Credentials::new(
            auth.access_key_id.clone(),
            secret.to_owned(),
            None,
            None,
            "fleetkey",
        )
        .into();
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::NoHeader;
        settings.signature_location = SignatureLocation::Headers;
        // Exactly the headers the client signed, whichever they are.
        settings.excluded_headers = None;
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&auth.region)
            .name("kms")
            .time(time)
            .settings(settings)
            .build()
            .map_err(|e| AuthError::Invalid(format!("cannot check the signature: {e}")))?
            .into();
        // A header that names x-amz-content-sha256 states the body's hash: it
        // must be the body's.
        let body = SignableBody::Bytes(req.body);
        let signable = SignableRequest::new(req.method, req.uri, signed.iter().copied(), body)
            .map_err(|e| AuthError::Invalid(format!("cannot check the signature: {e}")))?;
        let out = sign(signable, &params)
            .map_err(|e| AuthError::Invalid(format!("cannot check the signature: {e}")))?;
        Ok(out.signature().to_owned())
    }

    const AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/kms/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";

    #[test]
    fn headers_are_read_and_refused() {
        let a = parse(AUTH).unwrap();
        assert_eq!(a.access_key_id, "AKIDEXAMPLE");
        assert_eq!(a.region, "us-east-1");
        assert_eq!(a.signed_headers, ["host", "x-amz-date"]);
        for bad in [
            "",
            "AWS4-HMAC-SHA1 Credential=a/20150830/us-east-1/kms/aws4_request, SignedHeaders=host;x-amz-date, Signature=00",
            &AUTH.replace("/kms/", "/s3/"),
            &AUTH.replace("aws4_request", "aws5"),
            &AUTH.replace("20150830", "2015083"),
            &AUTH.replace("host;x-amz-date", "host"),
            &AUTH.replace("host;x-amz-date", "x-amz-date"),
            &AUTH.replace("Signature=5f", "Signature=5F"),
            &AUTH.replace(", Signature=", ", Signature=00, Signature="),
            &format!("{AUTH}, Extra=1"),
            &AUTH.replace("AKIDEXAMPLE", "AKID EXAMPLE"),
            &"x".repeat(5000),
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn amz_dates() {
        let t = parse_amz_date("20150830T123600Z").unwrap();
        assert_eq!(
            humantime::format_rfc3339(t).to_string(),
            "2015-08-30T12:36:00Z"
        );
        for bad in [
            "20150830T1236Z",
            "20150830 123600Z",
            "20151330T123600Z",
            "2015083xT123600Z",
        ] {
            assert!(parse_amz_date(bad).is_none(), "{bad}");
        }
    }

    /// A request signed as a KMS client signs it (the example secret of AWS's
    /// documentation) verifies; another secret, body, signed header value,
    /// region or time does not, nor a signed header given twice. (Signatures
    /// made by independent clients, botocore's, are checked by the boto3 tests.)
    #[test]
    fn a_signed_request_verifies_and_a_changed_one_does_not() {
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        let headers = vec![
            ("content-type", "application/x-amz-json-1.1"),
            ("host", "kms.example"),
            ("x-amz-date", "20150830T123600Z"),
            ("x-amz-target", "TrentService.Encrypt"),
        ];
        let body = br#"{"KeyId":"k","Plaintext":"aGk="}"#;
        let req = Request {
            method: "POST",
            uri: "/",
            headers: &headers,
            body,
        };
        let mut auth = Authorization {
            access_key_id: "AKIDEXAMPLE".into(),
            date: "20150830".into(),
            region: "us-east-1".into(),
            signed_headers: headers.iter().map(|(k, _)| (*k).to_owned()).collect(),
            signature: String::new(),
        };
        let signed = headers.clone();
        let time = parse_amz_date("20150830T123600Z").unwrap();
        auth.signature = compute(&auth, &req, &signed, secret, time).unwrap();
        let now = time + Duration::from_secs(60);
        verify(&auth, &req, secret, now).unwrap();
        assert!(verify(&auth, &req, "another secret", now).is_err());
        let other = Request {
            body: br#"{"KeyId":"k","Plaintext":"aGl="}"#,
            ..req
        };
        assert!(verify(&auth, &other, secret, now).is_err());
        let late = time + MAX_SKEW + Duration::from_secs(1);
        assert!(
            matches!(verify(&auth, &req, secret, late), Err(AuthError::Invalid(m)) if m.contains("expired"))
        );
        let mut h2 = headers.clone();
        h2[3].1 = "TrentService.Decrypt";
        let swapped = Request {
            headers: &h2,
            ..req
        };
        assert!(verify(&auth, &swapped, secret, now).is_err());
        let mut h4 = headers.clone();
        h4.push(("x-amz-security-token", "FQoG"));
        let session = Request {
            headers: &h4,
            ..req
        };
        assert_eq!(
            verify(&auth, &session, secret, now),
            Err(AuthError::UnknownKey)
        );
        let mut h3 = headers.clone();
        h3.push(("host", "other"));
        let twice = Request {
            headers: &h3,
            ..req
        };
        assert!(verify(&auth, &twice, secret, now).is_err());
        let mut wrong_region = auth.clone();
        wrong_region.region = "eu-west-1".into();
        assert!(verify(&wrong_region, &req, secret, now).is_err());
    }

    proptest! {
        /// Whatever the signed headers' values (spaces anywhere), body, region
        /// and secret, the signature computed here is AWS's implementation's.
        #[test]
        fn signatures_are_the_oracles(
            values in proptest::collection::vec("[ -~]{0,40}", 1..4),
            body in proptest::collection::vec(any::<u8>(), 0..300),
            region in "[a-z]{2}-[a-z]{4,9}-[1-9]",
            secret in "[A-Za-z0-9+/]{40}",
            secs in 1_400_000_000u64..2_000_000_000,
        ) {
            let time = std::time::UNIX_EPOCH + Duration::from_secs(secs);
            let amz = humantime::format_rfc3339_seconds(time)
                .to_string()
                .replace(['-', ':'], "");
            let mut headers: Vec<(String, String)> = vec![
                ("host".into(), "kms.example:8400".into()),
                ("x-amz-date".into(), amz.clone()),
            ];
            for (i, v) in values.iter().enumerate() {
                headers.push((format!("x-test-{i}"), v.clone()));
            }
            headers.retain(|(_, v)| axum::http::HeaderValue::from_str(v).is_ok());
            let pairs: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let req = Request { method: "POST", uri: "/", headers: &pairs, body: &body };
            let mut auth = Authorization {
                access_key_id: "FKIA0000000000000000".into(),
                date: amz[..8].to_owned(),
                region,
                signed_headers: pairs.iter().map(|(k, _)| (*k).to_owned()).collect(),
                signature: String::new(),
            };
            auth.signature = compute(&auth, &req, &pairs, &secret, time).unwrap();
            prop_assert!(verify(&auth, &req, &secret, time).is_ok());
        }

        #[test]
        fn any_header_is_read_or_refused_without_panicking(s in ".{0,300}") {
            let _ = parse(&s);
            let _ = parse_amz_date(&s);
        }
    }
}
