//! Attribution variant: the baseline plus AES-256-GCM from RustCrypto's `aes-gcm` and the
//! system random source (`getrandom`), as the SDK uses them (no SDK).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};

#[tokio::main]
async fn main() {
    let addr = sdk_footprint::server_addr();
    println!("{}", sdk_footprint::baseline_work(&addr).await);
    let mut nonce = [0u8; 12];
    let key = Aes256Gcm::new(&Key::<Aes256Gcm>::from([7u8; 32]));
    let opened = getrandom::fill(&mut nonce).ok().and_then(|()| {
        let sealed = key.encrypt(&Nonce::from(nonce), Payload { msg: addr.as_bytes(), aad: b"x" }).ok()?;
        key.decrypt(&Nonce::from(nonce), Payload { msg: &sealed, aad: b"x" }).ok()
    });
    println!("sealed and opened: {:?}", opened.map(|plain| plain.len()));
}
