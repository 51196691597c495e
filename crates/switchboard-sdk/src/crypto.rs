//! Encryption at rest for the local cache: AES-256-GCM under the key the app supplies
//! (kept by the app in the keychain/keystore; the SDK never writes it anywhere).
//!
//! A sealed value is `nonce (12 bytes) || ciphertext || tag (16 bytes)`. Every call to
//! [`Cipher::seal`] draws a fresh random 96-bit nonce; with random nonces one key must not
//! seal more than about 2^32 values, far beyond what a chat cache on one device writes.
//!
//! The associated data (AAD) is chosen by the caller to bind a value to where it is stored
//! (table, column and row), so a value copied into another column or row fails to open.
//!
//! The implementation is RustCrypto's `aes-gcm` (pure Rust, AES-NI/CLMUL or ARMv8 crypto
//! instructions when the CPU has them, constant-time software otherwise): about 35 KB
//! smaller in an app than aws-lc (docs/benchmarks.md). The format is standard AES-256-GCM
//! (a known-answer test below pins it), so caches sealed by earlier versions still open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};

/// Length of the random nonce that starts every sealed value.
const NONCE_LEN: usize = 12;

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
    key: Aes256Gcm,
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
        Cipher { key: Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key)) }
    }

    /// Encrypts `plaintext`, authenticating `aad` with it. Returns nonce||ciphertext||tag.
    pub(crate) fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        // The system RNG does not fail on any platform we support; carrying on with a
        // non-random nonce would be far worse than stopping.
        getrandom::fill(&mut nonce).expect("the system random number generator failed");
        self.seal_with_nonce(nonce, plaintext, aad)
    }

    /// [`Cipher::seal`] with a given nonce (tests use known-answer vectors).
    fn seal_with_nonce(&self, nonce: [u8; NONCE_LEN], plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let body = self
            .key
            .encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad })
            .expect("AES-GCM sealing fails only beyond 64 GB of text or AAD");
        let mut out = Vec::with_capacity(NONCE_LEN + body.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        out
    }

    /// Decrypts a value made by [`Cipher::seal`] with the same key and `aad`.
    pub(crate) fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < OVERHEAD {
            return Err(CryptoError::Truncated);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CryptoError::Truncated)?;
        self.key.decrypt(&Nonce::from(nonce), Payload { msg: body, aad }).map_err(|_| CryptoError::Authentication)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// Test case 16 of the GCM specification (McGrew & Viega): AES-256, 96-bit IV, AAD. Any
    /// standard AES-256-GCM gives these bytes, so caches stay readable whatever implementation
    /// sealed them.
    #[test]
    fn known_answer_of_the_gcm_specification() {
        let key: [u8; 32] = hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308").try_into().unwrap();
        let nonce: [u8; NONCE_LEN] = hex("cafebabefacedbaddecaf888").try_into().unwrap();
        let plaintext = hex(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        );
        let aad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let expected = [
            &nonce[..],
            &hex(
                "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
            ),
            &hex("76fc6ece0f4e1768cddf8853bb2d551b"),
        ]
        .concat();
        let cipher = Cipher::new(&key);
        assert_eq!(cipher.seal_with_nonce(nonce, &plaintext, &aad), expected);
        assert_eq!(cipher.open(&expected, &aad).unwrap(), plaintext);
    }

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
