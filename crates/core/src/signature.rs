//! HMAC-SHA256 signatures of webhook bodies, in the `sha256=<hex>` form GitHub uses
//! for `X-Hub-Signature-256` and OpenLoom uses for `X-OpenLoom-Signature-256`.
//!
//! One implementation for both directions: what OpenLoom signs going out is checked
//! the same way a hook coming in is, so a receiver written against our docs and our
//! own GitHub route agree on every byte.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The prefix of a signature header's value.
pub const PREFIX: &str = "sha256=";

fn mac(secret: &[u8], body: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length (RFC 2104 hashes long ones), so this cannot fail.
    let mut mac = match HmacSha256::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(hmac::digest::InvalidLength) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(body);
    mac
}

/// `sha256=<lowercase hex of HMAC-SHA256(secret, body)>`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    format!("{PREFIX}{}", hex::encode(mac(secret, body).finalize().into_bytes()))
}

/// Whether `header` (a `sha256=<hex>` value) is the signature of `body` under
/// `secret`. The comparison takes the same time whatever the bytes, so a caller
/// cannot learn the signature a byte at a time; a malformed header is just false.
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_digest) = header.trim().strip_prefix(PREFIX) else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_digest) else {
        return false;
    };
    mac(secret, body).verify_slice(&expected).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GitHub's documented example ("Validating webhook deliveries"): secret
    /// "It's a Secret to Everybody", payload "Hello, World!".
    const GITHUB_EXAMPLE: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn signs_githubs_documented_example() {
        assert_eq!(sign(b"It's a Secret to Everybody", b"Hello, World!"), GITHUB_EXAMPLE);
    }

    #[test]
    fn verifies_only_the_right_body_secret_and_form() {
        let secret = b"It's a Secret to Everybody";
        assert!(verify(secret, b"Hello, World!", GITHUB_EXAMPLE));
        assert!(!verify(secret, b"Hello, World?", GITHUB_EXAMPLE));
        assert!(!verify(b"another secret", b"Hello, World!", GITHUB_EXAMPLE));
        assert!(!verify(secret, b"Hello, World!", &GITHUB_EXAMPLE[PREFIX.len()..]));
        assert!(!verify(secret, b"Hello, World!", "sha256=zz"));
        assert!(!verify(secret, b"Hello, World!", "sha256="));
        assert!(!verify(secret, b"Hello, World!", ""));
    }
}
