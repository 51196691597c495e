//! Drives real browsers through WebDriver (fantoccini): Debian's Chromium through ChromeDriver,
//! and Firefox ESR through geckodriver. Starts one driver per test on a free port, opens
//! headless browser sessions against the in-process server, waits on conditions evaluated in
//! the page, and saves screenshots under `target/screenshots/`.
//!
//! Every browser test is `#[ignore]`d with the browser it needs, so a plain `cargo test` lists
//! them as ignored; `-- --include-ignored` runs them (CI does), and then a missing driver is
//! a failure naming what to install, never a silent pass. `CHROMEDRIVER`, `CHROMIUM`, `GECKODRIVER` and
//! `FIREFOX` override the paths (defaults `/usr/bin/chromedriver`, `/usr/bin/chromium`,
//! `geckodriver` on the `PATH`, `/usr/bin/firefox-esr`). geckodriver is not packaged by
//! Debian: `cargo install geckodriver` builds it from crates.io (`.ci/run` does).

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

/// How long a condition may take to become true in the page.
pub const WAIT: Duration = Duration::from_secs(15);

/// Which browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Chromium,
    Firefox,
}

/// A running ChromeDriver or geckodriver; killed on drop.
pub struct Driver {
    child: Child,
    url: String,
    engine: Engine,
}

impl Drop for Driver {
    /// Kills the driver's whole process group: the browsers it started too, so a test that
    /// panicked before closing its windows leaves no browser running.
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.child.id())]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    /// Starts ChromeDriver; panics naming what to install when it is missing.
    pub async fn start() -> Driver {
        Driver::start_engine(Engine::Chromium).await
    }

    /// Starts the WebDriver server of `engine` (see [`Driver::start`]).
    pub async fn start_engine(engine: Engine) -> Driver {
        let (path, install) = match engine {
            Engine::Chromium => (
                std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into()),
                "apt-get install chromium chromium-driver",
            ),
            Engine::Firefox => (
                std::env::var("GECKODRIVER")
                    .ok()
                    .or_else(|| on_path("geckodriver"))
                    .unwrap_or_else(|| "geckodriver".into()),
                "apt-get install firefox-esr; cargo install geckodriver",
            ),
        };
        if !std::path::Path::new(&path).exists() {
            panic!("this browser test needs {path}, which is not there ({install})");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(&path)
            // Its own process group, which the browsers it starts join (see `Drop`).
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {path}: {error}"));
        let driver = Driver { child, url: format!("http://127.0.0.1:{port}"), engine };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return driver;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("chromedriver did not listen on port {port}");
    }

    /// A new headless browser window (its own profile: its own cookies). geckodriver serves
    /// one session at a time.
    pub async fn browser(&self) -> Browser {
        self.browser_trusting(None).await
    }

    /// A new browser window that trusts the server certificate whose public key hashes to
    /// `spki_sha256` (base64 SHA-256 of its SubjectPublicKeyInfo), as Chromium's
    /// `--ignore-certificate-errors-spki-list` takes it: what `switchboard serve
    /// --tls-self-signed` prints. Chromium only.
    pub async fn browser_trusting(&self, spki_sha256: Option<&str>) -> Browser {
        let mut capabilities = serde_json::Map::new();
        match self.engine {
            Engine::Chromium => {
                let mut options = chromium_options();
                if let Some(spki) = spki_sha256 {
                    let args = options["args"].as_array_mut().unwrap();
                    args.push(json!(format!("--ignore-certificate-errors-spki-list={spki}")));
                }
                capabilities.insert("goog:chromeOptions".into(), options);
            }
            Engine::Firefox => {
                let firefox = std::env::var("FIREFOX").unwrap_or_else(|_| "/usr/bin/firefox-esr".into());
                let options = json!({"binary": firefox, "args": ["-headless", "-width=1440", "-height=900"]});
                capabilities.insert("moz:firefoxOptions".into(), options);
            }
        }
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .unwrap_or_else(|error| panic!("cannot open a {:?} session: {error}", self.engine));
        Browser { client }
    }
}

fn on_path(program: &str) -> Option<String> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .chain(["/root/.cargo/bin"])
        .map(|dir| format!("{dir}/{program}"))
        .find(|path| std::path::Path::new(path).exists())
}

/// Headless, and without Chromium's background traffic (the test machines have no outside
/// network: it would only fail and slow the start).
fn chromium_options() -> Value {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let args = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1440,900",
        "--lang=en-US",
    ];
    json!({"binary": chromium, "args": args})
}

/// One browser window.
pub struct Browser {
    pub client: Client,
}

impl Browser {
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|error| panic!("cannot open {url}: {error}"));
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) in the page.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client.execute(script, args).await.unwrap_or_else(|error| panic!("script failed: {error}\n{script}"))
    }

    /// Waits until `script` returns a truthy value; returns it. Panics with `what` and the
    /// last value after [`WAIT`].
    pub async fn until(&self, what: &str, script: &str) -> Value {
        self.poll(what, script, Duration::from_millis(100)).await
    }

    /// [`Browser::until`], polling every 5 ms: how long it took (benchmarks; the figure
    /// includes one WebDriver round trip).
    pub async fn time_until(&self, what: &str, script: &str) -> Duration {
        let started = std::time::Instant::now();
        self.poll(what, script, Duration::from_millis(5)).await;
        started.elapsed()
    }

    async fn poll(&self, what: &str, script: &str, every: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut last = Value::Null;
        while tokio::time::Instant::now() < deadline {
            last = self.client.execute(script, Vec::new()).await.unwrap_or(Value::Null);
            let truthy = !matches!(&last, Value::Null | Value::Bool(false)) && last != json!(0) && last != json!("");
            if truthy {
                return last;
            }
            tokio::time::sleep(every).await;
        }
        self.screenshot(&format!("failed-{}", what.replace(|c: char| !c.is_ascii_alphanumeric(), "-"))).await;
        panic!("timed out waiting for: {what} (last value {last})");
    }

    /// Waits for an element matching `selector` to exist and be visible.
    pub async fn visible(&self, selector: &str) {
        let script = format!(
            "const e = document.querySelector({sel}); return !!e && !e.closest('[hidden]') && e.getClientRects().length > 0;",
            sel = json!(selector)
        );
        self.until(&format!("{selector} visible"), &script).await;
    }

    /// Waits until the text of `selector` contains `needle`; returns the whole text.
    pub async fn text_contains(&self, selector: &str, needle: &str) -> String {
        let script = format!(
            "const e = document.querySelector({sel}); return e && e.textContent.includes({needle}) ? e.textContent : null;",
            sel = json!(selector),
            needle = json!(needle)
        );
        self.until(&format!("{selector} contains {needle:?}"), &script).await.as_str().unwrap_or_default().to_owned()
    }

    pub async fn click(&self, selector: &str) {
        self.visible(selector).await;
        let element = self.client.find(Locator::Css(selector)).await.unwrap();
        element.click().await.unwrap_or_else(|error| panic!("cannot click {selector}: {error}"));
    }

    pub async fn type_into(&self, selector: &str, text: &str) {
        self.visible(selector).await;
        let element = self.client.find(Locator::Css(selector)).await.unwrap();
        element.send_keys(text).await.unwrap_or_else(|error| panic!("cannot type into {selector}: {error}"));
    }

    pub async fn select(&self, selector: &str, value: &str) {
        self.visible(selector).await;
        let element = self.client.find(Locator::Css(selector)).await.unwrap();
        element
            .select_by_value(value)
            .await
            .unwrap_or_else(|error| panic!("cannot select {value} in {selector}: {error}"));
    }

    /// Logs in through the login form.
    pub async fn login(&self, base: &str, email: &str, password: &str) {
        self.goto(&format!("{base}/")).await;
        self.type_into("#login-email", email).await;
        self.type_into("#login-password", password).await;
        self.click("#login-submit").await;
    }

    /// Makes the page's viewport `width`×`height` CSS pixels: sets the window size, then
    /// corrects by what the window's frame takes (none in headless Chromium, some elsewhere).
    pub async fn viewport(&self, width: u32, height: u32) {
        self.client.set_window_size(width, height).await.unwrap_or_else(|error| panic!("cannot resize: {error}"));
        let inner = self.js("return [window.innerWidth, window.innerHeight]", vec![]).await;
        let (inner_width, inner_height) = (inner[0].as_u64().unwrap() as u32, inner[1].as_u64().unwrap() as u32);
        if (inner_width, inner_height) != (width, height) {
            let (outer_width, outer_height) =
                (width + (width - inner_width.min(width)), height + (height - inner_height.min(height)));
            self.client.set_window_size(outer_width, outer_height).await.unwrap();
        }
        self.until(
            &format!("viewport {width}x{height}"),
            &format!("return window.innerWidth === {width} && window.innerHeight === {height}"),
        )
        .await;
    }

    /// Saves a PNG of the window as `target/screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) {
        let Ok(png) = self.client.screenshot().await else { return };
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(dir.join(format!("{name}.png")), png);
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}
