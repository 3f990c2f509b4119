//! The web console in a real browser (headless Chromium through chromedriver, driven by
//! fantoccini) against a devnet: the first page is interactive in under 1 s; a tenant deploys
//! the Logos full node from the catalog, sees it reach Verified with its endpoint, reads its
//! streamed logs and closes it; the providers page shows the machine; the network page shows
//! the finality latency. Screenshots go to `<target>/w3bi-screenshots/`. From the attacker's
//! side: a request for another host, a form without the console's token and a cross-site form
//! are refused and change nothing. Needs root (the devnet's sub0layer) and Chromium
//! (scripts/install-deps).

use fantoccini::{elements::Element, Client, ClientBuilder, Locator};
use std::{
    net::TcpStream,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

mod common;

use common::{logos_command, runtime, stdout_lines, sub0::Devnet, LOGOS};

const CONSOLE_PORT: u16 = 29_090;
const DRIVER_PORT: u16 = 29_091;

/// A child process killed when the test ends.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn screenshots() -> PathBuf {
    let target = std::path::Path::new(LOGOS)
        .parent()
        .unwrap()
        .parent()
        .unwrap();
    let directory = target.join("w3bi-screenshots");
    std::fs::create_dir_all(&directory).unwrap();
    directory
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} is not listening on {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `logos w3bi` for the devnet's `dev` key.
fn console(devnet: &Devnet) -> Process {
    let mut child = logos_command()
        .args(["w3bi", "--listen", &format!("127.0.0.1:{CONSOLE_PORT}")])
        .args(["--rpc", &devnet.rpc, "--from", "dev"])
        .arg("--keystore")
        .arg(devnet.dir.join("keys"))
        .arg("--genesis")
        .arg(devnet.dir.join("genesis.toml"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = stdout_lines(&mut child);
    let line = lines.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(line.starts_with("console: http://"), "{line}");
    Process(child)
}

fn chromedriver() -> Process {
    let child = Command::new("chromedriver")
        .arg(format!("--port={DRIVER_PORT}"))
        .stdout(Stdio::null())
        .spawn()
        .expect("chromedriver (scripts/install-deps installs chromium-driver)");
    wait_for_port(DRIVER_PORT, "chromedriver");
    Process(child)
}

async fn browser() -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000"],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{DRIVER_PORT}"))
        .await
        .expect("a Chromium session")
}

fn url(path: &str) -> String {
    format!("http://127.0.0.1:{CONSOLE_PORT}{path}")
}

/// Waits until the element at `css` has text for which `done` holds; that text.
async fn text_until(
    browser: &Client,
    css: &str,
    bound: Duration,
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + bound;
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(element) = browser.find(Locator::Css(css)).await {
            last = element.text().await.unwrap_or_default();
            if done(&last) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let at = browser
        .current_url()
        .await
        .map(|url| url.to_string())
        .unwrap_or_default();
    let page = browser.source().await.unwrap_or_default();
    panic!("{css} never became as expected at {at}; last: {last:?}; page:\n{page}");
}

async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

async fn button(browser: &Client, label: &str) -> Element {
    let xpath = format!("//button[normalize-space()='{label}']");
    browser.find(Locator::XPath(&xpath)).await.unwrap()
}

#[test]
fn a_tenant_deploys_watches_and_closes_a_node_in_the_browser() {
    let devnet = Devnet::start("w3bi", 21_100, 71, &[]);
    let _console = console(&devnet);
    let _driver = chromedriver();
    let rt = runtime();
    rt.block_on(async {
        let browser = browser().await;

        // The first page: interactive in under 1 s, measured by the browser.
        browser.goto(&url("/")).await.unwrap();
        let interactive: f64 = browser
            .execute(
                "return performance.getEntriesByType('navigation')[0].domInteractive;",
                vec![],
            )
            .await
            .unwrap()
            .as_f64()
            .unwrap();
        println!("first page interactive after {interactive:.0} ms");
        assert!(interactive < 1_000.0, "{interactive} ms");

        // Deploy the Logos full node from the catalog.
        browser.goto(&url("/catalog")).await.unwrap();
        let deploy = "//tr[th[normalize-space()='Logos full node']]//button";
        browser
            .find(Locator::XPath(deploy))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let status = text_until(
            &browser,
            "[data-testid=status]",
            Duration::from_secs(180),
            |text| text == "Verified",
        )
        .await;
        assert_eq!(status, "Verified");
        let lease_url = browser.current_url().await.unwrap().to_string();
        let endpoint = text_until(
            &browser,
            "[data-testid=endpoint]",
            Duration::from_secs(5),
            |t| t.contains(':'),
        )
        .await;
        println!("lease at {lease_url} Verified, endpoint {endpoint}");
        // Its logs stream in, and its resource use is charted.
        let logs = text_until(&browser, "pre.logs", Duration::from_secs(60), |text| {
            !text.is_empty()
        })
        .await;
        assert!(logs.lines().count() >= 1);
        text_until(
            &browser,
            "svg[data-chart=memory] text",
            Duration::from_secs(30),
            |text| !text.is_empty(),
        )
        .await;
        screenshot(&browser, "lease").await;

        // The providers page shows the machine; the network page the finality latency.
        browser.goto(&url("/providers")).await.unwrap();
        let attestation = text_until(
            &browser,
            "[data-testid=attestation]",
            Duration::from_secs(5),
            |t| !t.is_empty(),
        )
        .await;
        println!("provider 0 attestation: {attestation}");
        assert!(browser.source().await.unwrap().contains("Provider 0"));
        screenshot(&browser, "providers").await;
        browser.goto(&url("/network")).await.unwrap();
        let latency = text_until(
            &browser,
            "[data-testid=latency]",
            Duration::from_secs(10),
            |text| text.parse::<u64>().is_ok_and(|ms| ms > 0),
        )
        .await;
        println!("finality latency shown: {latency} ms");
        screenshot(&browser, "network").await;

        // Attacks on the console: nothing changes.
        let http = reqwest::Client::new();
        let close_url = format!("{lease_url}/close");
        let foreign_host = http
            .get(url("/"))
            .header("Host", "evil.example:29090")
            .send()
            .await
            .unwrap();
        assert_eq!(foreign_host.status(), 421);
        let no_token = http
            .post(&close_url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("token=00")
            .send()
            .await
            .unwrap();
        assert_eq!(no_token.status(), 403);
        let cross_site = http
            .post(&close_url)
            .header("Origin", "https://evil.example")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("token=00")
            .send()
            .await
            .unwrap();
        assert_eq!(cross_site.status(), 403);
        let headers = http.get(url("/")).send().await.unwrap();
        let policy = headers.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        browser.goto(&lease_url).await.unwrap();
        text_until(
            &browser,
            "[data-testid=status]",
            Duration::from_secs(5),
            |text| text == "Verified",
        )
        .await;

        // Close it from the page.
        button(&browser, "Close and refund")
            .await
            .click()
            .await
            .unwrap();
        let closed = text_until(
            &browser,
            "[data-testid=status]",
            Duration::from_secs(60),
            |text| text.starts_with("Closed at"),
        )
        .await;
        println!("{closed}");
        screenshot(&browser, "closed").await;
        browser.close().await.unwrap();
    });
}
