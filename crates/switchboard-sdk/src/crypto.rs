//! Encryption at rest for the local cache: AES-256-GCM under the key the app supplies
//! (kept by the app in the keychain/keystore; the SDK never writes it anywhere).
//!
//! A sealed value is `nonce (12 bytes) || ciphertext || tag (16 bytes)`. Every call to
//! [`Cipher::seal`] draws a fresh random 96-bit nonce; with random nonces one key must not
//! seal more than about 2^32 values, far beyond what a chat cache on one device writes.
//!
//! The associated data (AAD) is chosen by the caller to bind a value to where it is stored
//! (table, column and row), so a value copied into another column or row fails to open.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

/// Length of the authentication tag appended by AES-GCM.
const TAG_LEN: usize = 16;

/// Bytes a sealed value adds to its plaintext.
pub(crate) const OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// Why a sealed value could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CryptoError {
    /// Shorter than a nonce and a tag: not something [`Cipher::seal`] produced.
    #[error("sealed value is truncated")]
    Truncated,
    /// Authentication failed: another key, another AAD, or the bytes were altered.
    #[error("sealed value failed authentication (wrong key or tampered data)")]
    Authentication,
}

/// AES-256-GCM with a random nonce per value.
pub(crate) struct Cipher {
    key: LessSafeKey,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Cipher").field("algorithm", &"AES-256-GCM").finish_non_exhaustive()
    }
}

impl Cipher {
    /// A cipher for the 256-bit `key`.
    pub(crate) fn new(key: &[u8; 32]) -> Cipher {
        // The only failure of `UnboundKey::new` is a key of the wrong length, which the
        // array type rules out.
        let unbound = UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte key is a valid AES-256 key");
        Cipher { key: LessSafeKey::new(unbound) }
    }

    /// Encrypts `plaintext`, authenticating `aad` with it. Returns nonce||ciphertext||tag.
    pub(crate) fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        // The system RNG does not fail on any platform we support; carrying on with a
        // non-random nonce would be far worse than stopping.
        aws_lc_rs::rand::fill(&mut nonce).expect("the system random number generator failed");
        let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
        out.extend_from_slice(&nonce);
        let mut body = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut body)
            .expect("AES-GCM sealing of an in-memory buffer does not fail");
        out.extend_from_slice(&body);
        out
    }

    /// Decrypts a value made by [`Cipher::seal`] with the same key and `aad`.
    pub(crate) fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < OVERHEAD {
            return Err(CryptoError::Truncated);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Truncated)?;
        let mut body = body.to_vec();
        let plain_len =
            self.key.open_in_place(nonce, Aad::from(aad), &mut body).map_err(|_| CryptoError::Authentication)?.len();
        body.truncate(plain_len);
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    #[test]
    fn round_trip() {
        let c = Cipher::new(&KEY);
        for text in [&b""[..], b"hello", &[0u8; 1000][..]] {
            let sealed = c.seal(text, b"messages.text");
            assert_eq!(sealed.len(), text.len() + OVERHEAD);
            assert_eq!(c.open(&sealed, b"messages.text").unwrap(), text);
        }
    }

    #[test]
    fn ciphertext_hides_plaintext_and_nonces_differ() {
        let c = Cipher::new(&KEY);
        let a = c.seal(b"MARKER-MARKER-MARKER", b"x");
        let b = c.seal(b"MARKER-MARKER-MARKER", b"x");
        assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN], "a fresh nonce per call");
        assert_ne!(a, b);
        assert!(!a.windows(6).any(|w| w == b"MARKER"));
    }

    #[test]
    fn wrong_key_fails() {
        let sealed = Cipher::new(&KEY).seal(b"secret", b"meta.value");
        let mut other = KEY;
        other[31] ^= 1;
        assert_eq!(Cipher::new(&other).open(&sealed, b"meta.value"), Err(CryptoError::Authentication));
    }

    #[test]
    fn other_aad_fails() {
        let c = Cipher::new(&KEY);
        let sealed = c.seal(b"secret", b"messages.text|1");
        assert_eq!(c.open(&sealed, b"messages.author|1"), Err(CryptoError::Authentication));
        assert_eq!(c.open(&sealed, b"messages.text|2"), Err(CryptoError::Authentication));
    }

    #[test]
    fn any_flipped_bit_fails() {
        let c = Cipher::new(&KEY);
        let sealed = c.seal(b"secret text", b"a");
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 0x01;
            assert_eq!(c.open(&t, b"a"), Err(CryptoError::Authentication), "byte {i}");
        }
    }

    #[test]
    fn truncated_fails() {
        let c = Cipher::new(&KEY);
        let sealed = c.seal(b"", b"a");
        assert_eq!(c.open(&sealed[..sealed.len() - 1], b"a"), Err(CryptoError::Truncated));
        assert_eq!(c.open(&[], b"a"), Err(CryptoError::Truncated));
    }

    #[test]
    fn debug_hides_key() {
        let key = [0xAB; 32];
        let s = format!("{:?}", Cipher::new(&key));
        assert!(!s.contains("171") && !s.to_lowercase().contains("ab, ab") && !s.contains("abab"), "{s}");
        assert!(s.contains("Cipher"));
    }
}
