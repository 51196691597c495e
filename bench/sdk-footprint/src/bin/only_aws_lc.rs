//! Attribution variant: the baseline plus AES-256-GCM from aws-lc-rs (no SDK).

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

#[tokio::main]
async fn main() {
    let addr = sdk_footprint::server_addr();
    println!("{}", sdk_footprint::baseline_work(&addr).await);
    let rng = SystemRandom::new();
    let mut nonce = [0u8; 12];
    let key = UnboundKey::new(&AES_256_GCM, &[7u8; 32]).map(LessSafeKey::new);
    let sealed = key.and_then(|key| {
        rng.fill(&mut nonce)?;
        let mut data = addr.clone().into_bytes();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut data)?;
        let opened = key.open_in_place(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut data)?.len();
        Ok(opened)
    });
    println!("sealed and opened: {sealed:?}");
}
