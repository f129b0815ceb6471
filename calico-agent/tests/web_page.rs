//! The agent's page in a real headless Chromium (Debian's `chromium`): loaded from an agent
//! running in a network namespace, its DOM after the inline script ran shows the endpoints,
//! the matrix the policy predicts, and the flows panel.

mod support;

use std::process::Command;
use std::time::Duration;

use calico_netns::fixtures::privileged;
use support::{endpoints_yaml, http_get, wait_until, Host};

const CHROMIUM: &str = "chromium";

const POLICY: &str = "
---
kind: Policy
name: w1-web
namespace: default
selector: app == 'w1'
types: [Ingress]
ingress:
- action: Allow
  protocol: TCP
  source: {selector: app == 'w0'}
  destination: {ports: [8080]}
- action: Deny
  metadata: {annotations: {name: rest}}
";

/// Whether Chromium runs here; without it the test skips, unless CALICO_PRIVILEGED_TESTS=1.
fn chromium_available(test: &str) -> bool {
    let ok = Command::new(CHROMIUM)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("CALICO_PRIVILEGED_TESTS").as_deref() == Ok("1") {
            panic!("{test}: chromium is required (CALICO_PRIVILEGED_TESTS=1) but does not run: apt-get install chromium");
        }
        eprintln!("{test}: skipped: chromium is not installed");
    }
    ok
}

/// The page's DOM after its script ran, as headless Chromium in `host`'s namespace sees it.
pub fn dump_dom(host: &Host, url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("ip")
        .args(["netns", "exec", host.ns.name(), CHROMIUM])
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--virtual-time-budget=5000", "--dump-dom", url])
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && dom.contains("</html>"),
        "chromium: {:?}\n{dom}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    dom
}

#[test]
fn the_page_shows_endpoints_matrix_and_flows_panel_in_chromium() {
    let test = "the_page_shows_endpoints_matrix_and_flows_panel_in_chromium";
    if !privileged(test) || !chromium_available(test) {
        return;
    }
    let wls = [("caliwp0", "10.68.0.10"), ("caliwp1", "10.68.0.11")];
    let mut host = Host::new("web-a", None, "192.168.79.1", &wls);
    host.write("all.yaml", &(endpoints_yaml("web-a", &wls) + POLICY));
    host.start_agent(&["--no-bgp", "--flow-logs", "--flow-log-interval-secs", "1"]);
    host.wait_programmed(2, Duration::from_secs(30));
    // A denied connect, once the agent names flows after this model (checked every second).
    std::thread::sleep(Duration::from_millis(1500));
    let ssh = "10.68.0.11:2222".parse().unwrap();
    let _ssh = host.listen(1, ssh);
    assert!(!host.connect(0, ssh), "denied");
    let logged = wait_until(Duration::from_secs(10), || {
        http_get(&host, "/flows").contains("\"verdict\":\"deny\"")
    });
    assert!(logged.is_some(), "{}", http_get(&host, "/flows"));

    let dom = dump_dom(&host, "http://127.0.0.1:9091/");
    let w0 = "k8s/default.web-a-w0/eth0";
    let w1 = "k8s/default.web-a-w1/eth0";
    for ep in [w0, w1] {
        assert!(
            dom.contains(&format!("<tr data-endpoint=\"{ep}\">")),
            "{dom}"
        );
    }
    assert!(dom.contains("<td class=\"state\">programmed</td>"), "{dom}");
    assert!(
        dom.contains("default/w1-web"),
        "the policy applying to w1: {dom}"
    );
    // w0 may reach w1 on 8080 only; w1 reaches w0 on everything (its profile).
    assert!(
        dom.contains(&format!(
            "<td class=\"partial\" data-from=\"{w0}\" data-to=\"{w1}\""
        )),
        "{dom}"
    );
    assert!(dom.contains("allowed: tcp/8080"), "{dom}");
    assert!(
        dom.contains(&format!(
            "<td class=\"allow\" data-from=\"{w1}\" data-to=\"{w0}\""
        )),
        "{dom}"
    );
    // The script ran: the flows panel shows the denied connect, named by its policy.
    assert!(!dom.contains("loading flows..."), "{dom}");
    let denied = dom
        .split("<tr")
        .find(|row| row.contains("data-verdict=\"deny\"") && row.contains(":2222"))
        .unwrap_or_else(|| panic!("no denied flow to :2222 in {dom}"));
    assert!(denied.contains("class=\"denied\""), "{denied}");
    assert!(
        denied.contains("policy default/w1-web ingress rule 1"),
        "{denied}"
    );
}
