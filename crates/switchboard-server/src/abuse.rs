//! Abuse resistance at the edge: how many login attempts an account and a client address
//! get, how many anonymous identities an address may create, password hashing off the async
//! runtime with bounded concurrency, the request body's deadline, the cap on connections per
//! client address and on sockets that have not authenticated yet. `docs/security.md` says
//! what each defends against; the settings are `AbuseConfig` (README's configuration table).
//!
//! Limits are kept per key in memory (this node only) as one timestamp each (GCRA: a bucket
//! of `burst` attempts that refills evenly over `window`); a key whose bucket is full again
//! is forgotten, and the table holds at most [`MAX_KEYS`] keys, so its memory is bounded
//! whatever an attacker sends.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use switchboard_protocol::ErrorCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// The most keys a limit remembers. Beyond it, keys whose bucket is full again are dropped,
/// then the ones closest to full: an attacker spraying keys costs memory up to this bound
/// only (about 100 bytes a key).
pub const MAX_KEYS: usize = 100_000;

/// The abuse-resistance settings (every one configurable; `0` turns a cap or limit off).
#[derive(Debug, Clone)]
pub struct AbuseConfig {
    /// Failed logins one account (brand + email) may have within `login_window` (a burst of
    /// this many, then one more per `login_window / login_attempts_per_account`).
    pub login_attempts_per_account: u32,
    /// Failed logins one client address may have within `login_window`.
    pub login_attempts_per_address: u32,
    pub login_window: Duration,
    /// Anonymous identities (`hello` with `anon: ""`) one client address may create within
    /// `anonymous_window`.
    pub anonymous_per_address: u32,
    pub anonymous_window: Duration,
    /// Password hashes (argon2) computed at once, on blocking threads; `0`: half the cores,
    /// at least one.
    pub password_hash_threads: usize,
    /// How long a login may wait for a hashing thread before it is answered `unavailable`
    /// (503, `Retry-After: 1`).
    pub password_hash_wait: Duration,
    /// How long a request body may take to arrive in full, from the end of its headers.
    pub body_read_timeout: Duration,
    /// Open connections (HTTP and WebSocket) from one client address; more are answered
    /// `too_many_requests` and closed. `0`: no cap.
    pub max_connections_per_address: usize,
    /// WebSockets that have not sent their `hello` yet, on the whole server; more are
    /// answered `unavailable` before the upgrade. `0`: no cap.
    pub max_unauthenticated_sockets: usize,
    /// Take the client's address from the last `X-Forwarded-For` entry (a proxy in front
    /// appends it) instead of the TCP peer. Only with a proxy that sets it: a client could
    /// otherwise name any address.
    pub trust_forwarded_for: bool,
}

impl Default for AbuseConfig {
    fn default() -> Self {
        AbuseConfig {
            login_attempts_per_account: 10,
            login_attempts_per_address: 50,
            login_window: Duration::from_secs(600),
            anonymous_per_address: 100,
            anonymous_window: Duration::from_secs(3600),
            password_hash_threads: 0,
            password_hash_wait: Duration::from_secs(2),
            body_read_timeout: Duration::from_secs(30),
            max_connections_per_address: 500,
            max_unauthenticated_sockets: 1000,
            trust_forwarded_for: false,
        }
    }
}

/// The key an address is limited by: an IPv4 address, or the /64 network of an IPv6
/// address (one host usually has a whole /64).
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// A rate per key: at most `burst` takes in a row, refilled evenly over `window` (GCRA). A
/// key's whole state is the moment its bucket is full again.
#[derive(Debug)]
pub struct KeyedLimit<K> {
    burst: u32,
    window: Duration,
    keys: Mutex<HashMap<K, Instant>>,
}

impl<K: Hash + Eq + Clone> KeyedLimit<K> {
    /// `burst = 0` turns the limit off.
    pub fn new(burst: u32, window: Duration) -> KeyedLimit<K> {
        KeyedLimit { burst, window, keys: Mutex::new(HashMap::new()) }
    }

    fn interval(&self) -> Duration {
        self.window / self.burst.max(1)
    }

    /// `Err(wait)` when `key` has no take left now: how long until it has one.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        if self.burst == 0 {
            return Ok(());
        }
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        match keys.get(key) {
            Some(full_at) => self.allowed(*full_at, now),
            None => Ok(()),
        }
    }

    fn allowed(&self, full_at: Instant, now: Instant) -> Result<(), Duration> {
        // Room for one more while the bucket is not `window - interval` from full.
        let tolerance = self.window - self.interval();
        let earliest = full_at.checked_sub(tolerance).unwrap_or(now);
        if earliest <= now { Ok(()) } else { Err(earliest - now) }
    }

    /// Takes one from `key`'s bucket, or `Err(wait)` (nothing taken) when it is empty.
    pub fn take(&self, key: &K, now: Instant) -> Result<(), Duration> {
        if self.burst == 0 {
            return Ok(());
        }
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let full_at = keys.get(key).copied().unwrap_or(now).max(now);
        self.allowed(full_at, now)?;
        if !keys.contains_key(key) && keys.len() >= MAX_KEYS {
            evict(&mut keys, now);
        }
        keys.insert(key.clone(), full_at + self.interval());
        Ok(())
    }

    /// Gives one back to `key` (an attempt that turned out legitimate).
    pub fn give_back(&self, key: &K, now: Instant) {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(full_at) = keys.get_mut(key) {
            *full_at = full_at.checked_sub(self.interval()).unwrap_or(now);
            if *full_at <= now {
                keys.remove(key);
            }
        }
    }

    /// Forgets `key`: its bucket is full.
    pub fn forget(&self, key: &K) {
        self.keys.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }

    /// Keys remembered (for tests and metrics).
    pub fn len(&self) -> usize {
        self.keys.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Makes room for a key: drops the full buckets, and if none is full, the fullest tenth.
fn evict<K: Hash + Eq + Clone>(keys: &mut HashMap<K, Instant>, now: Instant) {
    keys.retain(|_, full_at| *full_at > now);
    if keys.len() >= MAX_KEYS {
        let mut times: Vec<Instant> = keys.values().copied().collect();
        let cut = times.len() / 10;
        let (_, nth, _) = times.select_nth_unstable(cut);
        let nth = *nth;
        keys.retain(|_, full_at| *full_at > nth);
    }
}

/// `Retry-After` seconds for a wait: rounded up, at least one.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// Password hashing on blocking threads, at most `threads` at once. argon2 takes tens of
/// milliseconds of a core; on the async runtime's threads a login flood stalled every socket
/// and request (measured: REST p99 9.2 s, WebSocket pings 1.4 s at 50 logins/s).
#[derive(Debug)]
pub struct PasswordHashing {
    permits: Arc<Semaphore>,
    threads: usize,
    wait: Duration,
    waiting: AtomicUsize,
}

impl PasswordHashing {
    pub fn new(config: &AbuseConfig) -> PasswordHashing {
        let threads = match config.password_hash_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get().div_ceil(2)),
            n => n,
        };
        PasswordHashing {
            permits: Arc::new(Semaphore::new(threads)),
            threads,
            wait: config.password_hash_wait,
            waiting: AtomicUsize::new(0),
        }
    }

    /// Hashes computed at once.
    pub fn threads(&self) -> usize {
        self.threads
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> ApiResult<T> {
        let permit = self.permit().await?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(ApiError::internal)
    }

    async fn permit(&self) -> ApiResult<OwnedSemaphorePermit> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Ok(permit);
        }
        // A queue of a few rounds at most: beyond it, waiting would only add latency.
        let queued = self.waiting.fetch_add(1, Ordering::Relaxed);
        let waited = if queued >= self.threads * 64 {
            None
        } else {
            tokio::time::timeout(self.wait, self.permits.clone().acquire_owned()).await.ok().and_then(Result::ok)
        };
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        waited.ok_or_else(|| {
            metrics::counter!(crate::metrics::ABUSE_REFUSED, "limit" => "password_hashing").increment(1);
            ApiError::new(
                ErrorCode::Unavailable,
                format!(
                    "the server is checking too many passwords at once ({} at a time, waited {} ms); retry in a second",
                    self.threads,
                    self.wait.as_millis()
                ),
            )
            .retry_after(1)
        })
    }

    /// Argon2id hash of `password` (see `auth::hash_password`).
    pub async fn hash(&self, password: &str) -> ApiResult<String> {
        let password = password.to_owned();
        self.run(move || crate::auth::hash_password(&password)).await?
    }

    /// Whether `password` matches each of `hashes`, in order.
    pub async fn verify(&self, password: &str, hashes: Vec<String>) -> ApiResult<Vec<bool>> {
        let password = password.to_owned();
        self.run(move || hashes.iter().map(|hash| crate::auth::verify_password(&password, hash)).collect()).await
    }
}

/// A login's account key: the brand ("" when the login named none and no account matched)
/// and the email, lower-cased.
pub type AccountKey = (String, String);

/// The limits of one node (state shared by every request).
#[derive(Debug)]
pub struct Abuse {
    pub config: AbuseConfig,
    pub login_accounts: KeyedLimit<AccountKey>,
    pub login_addresses: KeyedLimit<IpAddr>,
    pub anonymous: KeyedLimit<IpAddr>,
    pub hashing: PasswordHashing,
    /// Permits for sockets that have not authenticated (`None`: no cap).
    pub unauthenticated: Option<Arc<Semaphore>>,
}

impl Abuse {
    pub fn new(config: AbuseConfig) -> Abuse {
        Abuse {
            login_accounts: KeyedLimit::new(config.login_attempts_per_account, config.login_window),
            login_addresses: KeyedLimit::new(config.login_attempts_per_address, config.login_window),
            anonymous: KeyedLimit::new(config.anonymous_per_address, config.anonymous_window),
            hashing: PasswordHashing::new(&config),
            unauthenticated: (config.max_unauthenticated_sockets > 0)
                .then(|| Arc::new(Semaphore::new(config.max_unauthenticated_sockets))),
            config,
        }
    }

    /// The refusal of a login over a limit.
    pub fn login_refused(&self, what: &str, limit: u32, wait: Duration) -> ApiError {
        metrics::counter!(crate::metrics::ABUSE_REFUSED, "limit" => "login").increment(1);
        let secs = retry_after_secs(wait);
        ApiError::new(
            ErrorCode::TooManyRequests,
            format!(
                "too many failed logins {what} (at most {limit} per {} s): try again in {secs} s",
                self.config.login_window.as_secs()
            ),
        )
        .retry_after(secs)
    }

    /// Counts a new anonymous identity for `address`, or refuses it.
    pub fn new_anonymous(&self, address: IpAddr) -> ApiResult<()> {
        self.anonymous.take(&address_key(address), Instant::now()).map_err(|wait| {
            metrics::counter!(crate::metrics::ABUSE_REFUSED, "limit" => "anonymous").increment(1);
            let secs = retry_after_secs(wait);
            ApiError::new(
                ErrorCode::TooManyRequests,
                format!(
                    "too many new anonymous identities from this address (at most {} per {} s): \
                     reuse the device secret you were given, or try again in {secs} s",
                    self.config.anonymous_per_address,
                    self.config.anonymous_window.as_secs()
                ),
            )
            .retry_after(secs)
        })
    }

    /// A place among the sockets waiting for their `hello`, or the refusal.
    pub fn unauthenticated_socket(&self) -> ApiResult<Option<OwnedSemaphorePermit>> {
        let Some(permits) = &self.unauthenticated else { return Ok(None) };
        permits.clone().try_acquire_owned().map(Some).map_err(|_| {
            metrics::counter!(crate::metrics::ABUSE_REFUSED, "limit" => "unauthenticated_sockets").increment(1);
            ApiError::new(
                ErrorCode::Unavailable,
                format!(
                    "too many sockets are waiting to authenticate (max_unauthenticated_sockets = {}); retry in a second",
                    self.config.max_unauthenticated_sockets
                ),
            )
            .retry_after(1)
        })
    }
}

/// The client's address: the TCP peer, or with `trust_forwarded_for` the last address in
/// `X-Forwarded-For` (the one the proxy in front added).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

impl ClientAddress {
    pub fn of(headers: &HeaderMap, extensions: &axum::http::Extensions, config: &AbuseConfig) -> ClientAddress {
        let peer = extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |ConnectInfo(addr)| addr.ip());
        if config.trust_forwarded_for
            // The last entry only: the ones before it are whatever the client sent.
            && let Some(forwarded) = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|value| value.to_str().ok())
                .flat_map(|value| value.split(','))
                .next_back()
                .and_then(|item| item.trim().parse::<IpAddr>().ok())
        {
            return ClientAddress(forwarded);
        }
        ClientAddress(peer)
    }
}

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress::of(&parts.headers, &parts.extensions, &state.config.abuse))
    }
}

/// Middleware: a request's body arrives in full within `body_read_timeout` (from the end of
/// its headers) and is at most `MAX_BODY_BYTES`, on every route; else `body_timeout` (408,
/// and the connection closes) or `body_too_large` (413). A client trickling a body can hold
/// a connection that long at most. Requests without a body pass untouched.
pub async fn body_deadline(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|length| length.to_str().ok().and_then(|l| l.trim().parse::<u64>().ok()) != Some(0));
    if !has_body {
        return next.run(request).await;
    }
    let limit = crate::api::MAX_BODY_BYTES;
    let timeout = state.config.abuse.body_read_timeout;
    let (parts, body) = request.into_parts();
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => next.run(Request::from_parts(parts, axum::body::Body::from(bytes))).await,
        Ok(Err(_)) => {
            // Over the limit, or the client went away mid-body (it will not read this).
            let mut response = ApiError::new(
                ErrorCode::BodyTooLarge,
                format!("the request body is larger than the limit of {limit} bytes"),
            )
            .into_response();
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
        Err(_) => {
            metrics::counter!(crate::metrics::ABUSE_REFUSED, "limit" => "body_timeout").increment(1);
            let mut response = ApiError::new(
                ErrorCode::BodyTimeout,
                format!(
                    "the request body did not arrive in full within {} s (body_read_timeout_secs); the connection is closed",
                    timeout.as_secs_f64()
                ),
            )
            .into_response();
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

/// Open connections per client address (the TCP peer's: a proxy in front counts as one
/// address, so behind one set `max_connections_per_address = 0`).
#[derive(Debug)]
pub struct ConnectionCounts {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
    /// Refused connections being answered (each for at most a handshake and 2 s): beyond
    /// [`MAX_REFUSALS_ANSWERED`] a refused connection is closed at once, so a flood of
    /// connections over the cap cannot hold the server's file descriptors through its
    /// answers.
    refusals: Arc<Semaphore>,
}

/// Refused connections answered at once, over all addresses.
pub const MAX_REFUSALS_ANSWERED: usize = 64;

/// One open connection, counted until dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    counts: Arc<ConnectionCounts>,
    key: IpAddr,
}

impl ConnectionCounts {
    pub fn new(max: usize) -> Arc<ConnectionCounts> {
        Arc::new(ConnectionCounts {
            max,
            open: Mutex::new(HashMap::new()),
            refusals: Arc::new(Semaphore::new(MAX_REFUSALS_ANSWERED)),
        })
    }

    /// Counts a connection from `ip`, or `None` when the address has its cap already.
    pub fn open(self: &Arc<Self>, ip: IpAddr) -> Option<ConnectionSlot> {
        let key = address_key(ip);
        if self.max == 0 {
            return Some(ConnectionSlot { counts: self.clone(), key });
        }
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(key).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(ConnectionSlot { counts: self.clone(), key })
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// A permit to answer one refused connection, or `None` when [`MAX_REFUSALS_ANSWERED`]
    /// are being answered already (the connection is then closed without an answer).
    pub fn refusal_permit(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.refusals).try_acquire_owned().ok()
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if self.counts.max == 0 {
            return;
        }
        let mut open = self.counts.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_one_per_interval() {
        let limit = KeyedLimit::<u8>::new(3, Duration::from_secs(30));
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limit.take(&1, start).is_ok());
        }
        let wait = limit.take(&1, start).unwrap_err();
        assert_eq!(wait, Duration::from_secs(10));
        assert_eq!(limit.check(&1, start), Err(Duration::from_secs(10)));
        // Another key is not affected.
        assert!(limit.take(&2, start).is_ok());
        // One more after the interval, not two.
        let later = start + Duration::from_secs(10);
        assert!(limit.take(&1, later).is_ok());
        assert!(limit.take(&1, later).is_err());
        // Given back: one more.
        limit.give_back(&1, later);
        assert!(limit.take(&1, later).is_ok());
        // Full again after the window: the whole burst, and the key forgotten on give-back.
        let much_later = later + Duration::from_secs(31);
        for _ in 0..3 {
            assert!(limit.take(&1, much_later).is_ok());
        }
        limit.forget(&1);
        assert!(limit.check(&1, much_later).is_ok());
        assert!(KeyedLimit::<u8>::new(0, Duration::from_secs(1)).take(&1, start).is_ok(), "0 is off");
    }

    #[test]
    fn the_table_stays_bounded() {
        let limit = KeyedLimit::<u32>::new(1, Duration::from_secs(600));
        let now = Instant::now();
        for key in 0..(MAX_KEYS as u32 + 5_000) {
            let _ = limit.take(&key, now + Duration::from_micros(u64::from(key)));
        }
        assert!(limit.len() <= MAX_KEYS, "{}", limit.len());
    }

    #[test]
    fn ipv6_addresses_are_limited_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn connections_are_counted_per_address_and_released() {
        let counts = ConnectionCounts::new(2);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let first = counts.open(ip).unwrap();
        let _second = counts.open(ip).unwrap();
        assert!(counts.open(ip).is_none());
        assert!(counts.open("192.0.2.2".parse().unwrap()).is_some());
        drop(first);
        assert!(counts.open(ip).is_some());
    }
}
