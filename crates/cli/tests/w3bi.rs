//! The web console in a real browser (headless Chromium through chromedriver, driven by
//! fantoccini) against a devnet: the first page is interactive in under 1 s; a tenant deploys
//! the Logos full node from the catalog, sees it reach Verified with its endpoint, reads its
//! streamed logs and closes it; the providers page shows the machine; the network page shows
//! the finality latency. Screenshots go to `<target>/w3bi-screenshots/`. From the attacker's
//! side: a request for another host, a form without the console's token and a cross-site form
//! are refused and change nothing. Needs root (the devnet's sub0layer) and Chromium
//! (scripts/install-deps).

use fantoccini::{Client, ClientBuilder, Locator};
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

/// `logos w3bi` for the devnet's `dev` key, and the URL it printed (with its key).
fn console(devnet: &Devnet) -> (Process, String) {
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
    let printed = line
        .strip_prefix("console: ")
        .unwrap_or_else(|| panic!("{line}"));
    assert!(printed.contains("/?key="), "{line}");
    (Process(child), printed.to_string())
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
    found_text_until(browser, Locator::Css(css), bound, done).await
}

/// [`text_until`] for the element at `xpath`.
async fn xpath_text_until(
    browser: &Client,
    xpath: &str,
    bound: Duration,
    done: impl Fn(&str) -> bool,
) -> String {
    found_text_until(browser, Locator::XPath(xpath), bound, done).await
}

async fn found_text_until(
    browser: &Client,
    locator: Locator<'_>,
    bound: Duration,
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + bound;
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(element) = browser.find(locator).await {
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
    panic!("{locator:?} never became as expected at {at}; last: {last:?}; page:\n{page}");
}

async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

/// Clicks the button at `xpath`, then accepts (or dismisses) the question the console asks;
/// the question.
async fn click_and_answer(browser: &Client, xpath: &str, accept: bool) -> String {
    let button = browser.find(Locator::XPath(xpath)).await.unwrap();
    button.click().await.unwrap();
    let question = browser.get_alert_text().await.unwrap();
    match accept {
        true => browser.accept_alert().await.unwrap(),
        false => browser.dismiss_alert().await.unwrap(),
    }
    question
}

#[test]
fn a_tenant_deploys_watches_and_closes_a_node_in_the_browser() {
    let devnet = Devnet::start("w3bi", 21_100, 71, &[]);
    let (_console, signed_in) = console(&devnet);
    let session = signed_in.split("key=").nth(1).unwrap().to_string();
    let _driver = chromedriver();
    let rt = runtime();
    rt.block_on(async {
        let browser = browser().await;

        // The printed URL signs the browser in; the first page is interactive (its scripts
        // run, DOMContentLoaded handled) in under 1 s, measured by the browser, as is the
        // catalog.
        browser.goto(&signed_in).await.unwrap();
        assert_eq!(browser.current_url().await.unwrap().as_str(), url("/"));
        for page in ["/", "/catalog"] {
            browser.goto(&url(page)).await.unwrap();
            let script =
                "return performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd;";
            let ready = browser
                .execute(script, vec![])
                .await
                .unwrap()
                .as_f64()
                .unwrap();
            println!("{page} interactive after {ready:.0} ms");
            assert!(ready > 0.0 && ready < 1_000.0, "{page}: {ready} ms");
        }

        // Deploy the Logos full node from the catalog: the console first asks, with the
        // escrow the blocks take (price × blocks); declined, nothing is leased.
        browser.goto(&url("/catalog")).await.unwrap();
        let deploy = "//tr[th[normalize-space()='Logos full node']]//button";
        let price = 4 * logos_devnet::sub0::PRICE_PER_UNIT;
        let escrow = format!("36000 blocks × {price} per block = {}", 36_000 * price);
        let question = click_and_answer(&browser, deploy, false).await;
        assert!(
            question.contains("Deploy Logos full node") && question.contains(&escrow),
            "{question}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(browser.current_url().await.unwrap().as_str(), url("/catalog"));
        browser.goto(&url("/")).await.unwrap();
        let source = browser.source().await.unwrap();
        assert!(source.contains("No leases yet"), "declined, yet leased");
        browser.goto(&url("/catalog")).await.unwrap();
        click_and_answer(&browser, deploy, true).await;
        let status = text_until(
            &browser,
            "[data-testid=status]",
            Duration::from_secs(180),
            |text| text == "Verified",
        )
        .await;
        assert_eq!(status, "Verified");
        let lease_url = browser.current_url().await.unwrap().to_string();
        // The first lease of this devnet: the declined deploy leased nothing.
        assert!(lease_url.ends_with("/leases/0"), "{lease_url}");
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
            |t| t.contains("last report at"),
        )
        .await;
        println!("provider 0 attestation: {attestation}");
        // Per component: each matched the machine's reference in its last report.
        let components = text_until(
            &browser,
            "[data-testid=attestation-components]",
            Duration::from_secs(5),
            // Each of the six matched, or is one the machine does not measure (LKRG and
            // eBPF where the host has none); boot chain, IMA, files and tamper always count.
            |t| {
                let matched = t.matches("matched (report at").count();
                let required = t.matches("not measured by the machine").count();
                let unmeasured = t.matches("not measured").count() - required;
                matched >= 4 && matched + unmeasured == 6 && !t.contains("excluded")
            },
        )
        .await;
        for component in ["Boot chain", "IMA (PCR 10)", "Files", "LKRG", "eBPF", "Tamper"] {
            assert!(components.contains(component), "{components}");
        }
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

        // Governance: a proposal made with the CLI is voted on in the console with the
        // console key's bonded stake, and its tally shows the vote.
        devnet
            .cli(&["stake", "bond", "--amount", "1000000000", "--from", "dev"])
            .unwrap();
        let proposed = devnet
            .cli(&[
                "gov", "propose", "set-price", "--class", "compute-hosted", "--amount", "1000",
                "--from", "dev",
            ])
            .unwrap();
        let proposal = proposed["id"].as_u64().unwrap();
        browser.goto(&url("/governance")).await.unwrap();
        let vote = format!("//article[h2[starts-with(normalize-space(), 'Proposal {proposal} ')]]//button[normalize-space()='Vote aye']");
        browser
            .find(Locator::XPath(&vote))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let term = |term: &str| {
            format!(
                "//article[@aria-labelledby='proposal-{proposal}']//dt[normalize-space()='{term}']\
                 /following-sibling::dd[1]"
            )
        };
        for (dt, dd) in [
            ("Your vote", "aye with 1000000000"),
            ("Ayes", "1000000000"),
            ("Active stake now", "1000000000 (the quorum's base if tallied now)"),
        ] {
            xpath_text_until(&browser, &term(dt), Duration::from_secs(30), |t| t == dd).await;
        }
        let tally = text_until(
            &browser,
            &format!("article[aria-labelledby=proposal-{proposal}] dl"),
            Duration::from_secs(1),
            |_| true,
        )
        .await;
        println!("proposal {proposal} after the console's vote: {tally}");
        screenshot(&browser, "governance").await;

        // Attacks on the console: each refused, the lease untouched.
        let http = reqwest::Client::new();
        let cookie = format!("logos_console={session}");
        browser.goto(&lease_url).await.unwrap();
        let page = browser.source().await.unwrap();
        let token = page.split("name=\"token\" value=\"").nth(1).unwrap();
        let token = token.split('"').next().unwrap().to_string();
        let close_url = format!("{lease_url}/close");
        let post = |url: &str, body: String| {
            http.post(url)
                .header("Cookie", &cookie)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body)
        };
        // Another local user: no session, nothing (not even the page with the token).
        let anonymous = http.get(url("/catalog")).send().await.unwrap();
        assert_eq!(anonymous.status(), 401);
        let anonymous = http
            .post(&close_url)
            .body(format!("token={token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), 401);
        let wrong_key = http.get(url("/?key=00")).send().await.unwrap();
        assert_eq!(wrong_key.status(), 401);
        // DNS rebinding: the right session and token under another host name.
        let rebound = post(&close_url, format!("token={token}"))
            .header("Host", "evil.example:29090")
            .send()
            .await
            .unwrap();
        assert_eq!(rebound.status(), 421);
        // A cross-site form (or fetch) with everything else right.
        let cross = post(&close_url, format!("token={token}"))
            .header("Origin", "https://evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(cross.status(), 403);
        assert!(cross.text().await.unwrap().contains("cross-site"));
        let cross = http
            .get(format!("{lease_url}/logs"))
            .header("Cookie", &cookie)
            .header("Sec-Fetch-Site", "cross-site")
            .send()
            .await
            .unwrap();
        assert_eq!(cross.status(), 403);
        // A forged token, an oversize body, zero blocks.
        let forged = post(&close_url, "token=00".into()).send().await.unwrap();
        assert_eq!(forged.status(), 403);
        let extend_url = format!("{lease_url}/extend");
        let padding = "x".repeat(20_000);
        let huge = post(&extend_url, format!("token={token}&blocks=1&pad={padding}"));
        assert_eq!(huge.send().await.unwrap().status(), 413);
        let zero = post(&extend_url, format!("token={token}&blocks=0"));
        assert_eq!(zero.send().await.unwrap().status(), 400);
        let headers = http
            .get(url("/"))
            .header("Cookie", &cookie)
            .send()
            .await
            .unwrap();
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

        // Close it from the page (asked first).
        let close = "//button[normalize-space()='Close and refund']";
        let question = click_and_answer(&browser, close, true).await;
        assert!(question.starts_with("Close lease"), "{question}");
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
